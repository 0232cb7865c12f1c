//! Robust statistics over small windows: median and median absolute deviation.

/// The median of `values` (which it reorders); `None` when empty.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mid = values.len() / 2;
    let (_, m, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    let upper = *m;
    if values.len() % 2 == 1 {
        return Some(upper);
    }
    let lower = values[..mid].iter().copied().fold(f64::MIN, f64::max);
    Some((lower + upper) / 2.0)
}

/// Median and median absolute deviation of `values` (reordered); `None` when empty.
pub fn median_mad(values: &mut [f64]) -> Option<(f64, f64)> {
    let m = median(values)?;
    for v in values.iter_mut() {
        *v = (*v - m).abs();
    }
    Some((m, median(values)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_mad() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(
            median_mad(&mut [1.0, 2.0, 3.0, 4.0, 100.0]),
            Some((3.0, 1.0))
        );
    }
}
