//! The offline model commands, `tda detect` and `tda forecast`: read a `timestamp,value` CSV,
//! run a model over it, write a CSV. Errors name the file and line.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context};
use tda_models::anomaly::{score_series, AnomalyConfig};
use tda_models::forecast::{forecast, ForecastConfig};
use time::{Duration, Month, PrimitiveDateTime};

/// A series read from CSV: each row's timestamp text and value.
pub struct Series {
    /// Timestamps as written.
    pub stamps: Vec<String>,
    /// Values.
    pub values: Vec<f64>,
}

/// Reads a CSV with a header naming `timestamp` and `value` columns (others are ignored).
pub fn read_csv(path: &Path) -> anyhow::Result<Series> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(t), Some(v)) = (col("timestamp"), col("value")) else {
        bail!(
            "{}:1: header must name `timestamp` and `value` columns",
            path.display()
        );
    };
    let mut series = Series {
        stamps: Vec::new(),
        values: Vec::new(),
    };
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let (Some(stamp), Some(value)) = (cells.get(t), cells.get(v)) else {
            bail!(
                "{}:{}: expected {} columns",
                path.display(),
                i + 2,
                header.len()
            );
        };
        let value: f64 = value.parse().map_err(|_| {
            anyhow::anyhow!(
                "{}:{}: value: `{value}` is not a number",
                path.display(),
                i + 2
            )
        })?;
        series.stamps.push(stamp.to_string());
        series.values.push(value);
    }
    Ok(series)
}

/// `tda detect`: one anomaly score per row, in [0, 1].
pub fn detect(input: &Path, output: &Path, params: Option<&str>) -> anyhow::Result<String> {
    let config: AnomalyConfig = match params {
        Some(json) => serde_json::from_str(json).context("--params")?,
        None => AnomalyConfig::default(),
    };
    let series = read_csv(input)?;
    let config = match step_seconds(&series.stamps) {
        Some(step) => config.with_step(step),
        None => config,
    };
    let scores = score_series(&series.values, config);
    let mut out = String::from("timestamp,value,anomaly_score\n");
    for ((t, v), s) in series.stamps.iter().zip(&series.values).zip(&scores) {
        let _ = writeln!(out, "{t},{v},{s:.6}");
    }
    std::fs::write(output, out).with_context(|| format!("{}", output.display()))?;
    let flagged = scores.iter().filter(|s| **s >= 0.5).count();
    Ok(format!(
        "{} rows scored, {flagged} flagged (score >= 0.5)\n",
        scores.len()
    ))
}

/// `tda forecast`: `horizon` rows of forecast and 95 % interval after the last row. The horizon
/// is a number of steps (`48`) or a duration (`2d`, turned into steps of the series' own step);
/// the rows' timestamps continue the input's, in its format.
pub fn forecast_csv(input: &Path, horizon: &str, output: &Path) -> anyhow::Result<String> {
    let series = read_csv(input)?;
    if series.values.is_empty() {
        bail!("{}: no rows to forecast from", input.display());
    }
    let step = step_seconds(&series.stamps);
    let horizon = horizon_steps(horizon, step)?;
    let config = ForecastConfig {
        seasons: step
            .map(tda_models::seasonality::calendar_seasons)
            .unwrap_or_default(),
        ..ForecastConfig::default()
    };
    let f = forecast(&series.values, horizon, &config);
    let next = next_stamps(&series.stamps, horizon);
    let mut out = String::from("timestamp,forecast,lower,upper\n");
    for (i, stamp) in next.iter().enumerate() {
        let (m, lo, hi) = (f.mean[i], f.lower95[i], f.upper95[i]);
        let _ = writeln!(out, "{stamp},{m},{lo},{hi}");
    }
    std::fs::write(output, out).with_context(|| format!("{}", output.display()))?;
    let found: Vec<String> = tda_models::seasonality::periods(&series.values)
        .iter()
        .map(|p| format!("{} (autocorrelation {:.2})", p.steps, p.strength))
        .collect();
    Ok(format!(
        "{horizon} steps forecast with {}; seasonal periods found: {}\n",
        f.model,
        if found.is_empty() {
            "none".to_string()
        } else {
            found.join(", ")
        }
    ))
}

/// `--horizon`: steps (`48`), or a duration (`2d`, `36h`) in steps of `step_secs`.
fn horizon_steps(text: &str, step_secs: Option<f64>) -> anyhow::Result<usize> {
    if let Ok(n) = text.trim().parse::<usize>() {
        return (n > 0)
            .then_some(n)
            .ok_or_else(|| anyhow::anyhow!("--horizon: must be at least 1 step"));
    }
    let d = humantime::parse_duration(text.trim()).map_err(|_| {
        anyhow::anyhow!("--horizon: `{text}` is neither a number of steps nor a duration like 2d")
    })?;
    let Some(step) = step_secs.filter(|s| *s > 0.0) else {
        bail!("--horizon: `{text}` is a duration, but the input's timestamps give no step; give a number of steps");
    };
    Ok(((d.as_secs_f64() / step).ceil() as usize).max(1))
}

/// `YYYY-MM-DD HH:MM:SS`, as the benchmark files write timestamps.
fn format() -> Vec<time::format_description::BorrowedFormatItem<'static>> {
    time::format_description::parse_borrowed::<2>("[year]-[month]-[day] [hour]:[minute]:[second]")
        .unwrap_or_default()
}

/// How the input writes its timestamps; the forecast's rows write theirs the same way.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Style {
    /// `YYYY-MM-DD HH:MM:SS`.
    Plain,
    /// RFC 3339 (written back in UTC).
    Rfc3339,
    /// Epoch milliseconds.
    EpochMs,
}

/// A timestamp in any of the [`Style`]s, as UTC.
fn parse_stamp(text: &str) -> Option<(PrimitiveDateTime, Style)> {
    let text = text.trim();
    if let Ok(t) = PrimitiveDateTime::parse(text, &format()) {
        return Some((t, Style::Plain));
    }
    let ts = tda_schema::Timestamp::parse(text).ok()?;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts.0) * 1_000_000).ok()?;
    let style = if text.bytes().all(|b| b.is_ascii_digit()) {
        Style::EpochMs
    } else {
        Style::Rfc3339
    };
    Some((PrimitiveDateTime::new(t.date(), t.time()), style))
}

fn write_stamp(t: PrimitiveDateTime, style: Style) -> String {
    let utc = t.assume_utc();
    match style {
        Style::Plain => t.format(&format()).unwrap_or_default(),
        Style::EpochMs => (utc.unix_timestamp_nanos() / 1_000_000).to_string(),
        Style::Rfc3339 => {
            tda_schema::Timestamp((utc.unix_timestamp_nanos() / 1_000_000) as i64).to_rfc3339()
        }
    }
}

/// The median step between the last timestamps, in seconds.
fn step_seconds(stamps: &[String]) -> Option<f64> {
    let parsed: Vec<PrimitiveDateTime> = stamps
        .iter()
        .rev()
        .take(25)
        .filter_map(|s| parse_stamp(s).map(|(t, _)| t))
        .collect();
    let mut steps: Vec<f64> = parsed
        .windows(2)
        .map(|w| (w[0] - w[1]).as_seconds_f64())
        .collect();
    if steps.is_empty() {
        return None;
    }
    steps.sort_by(f64::total_cmp);
    Some(steps[steps.len() / 2])
}

/// The timestamps after the last one, continuing its step (calendar months for monthly data)
/// in the input's format; step numbers (`+1` …) when the timestamps cannot be read.
fn next_stamps(stamps: &[String], n: usize) -> Vec<String> {
    let parsed: Option<Vec<(PrimitiveDateTime, Style)>> = stamps
        .iter()
        .rev()
        .take(3)
        .map(|s| parse_stamp(s))
        .collect();
    let Some(p) = parsed.filter(|p| p.len() >= 2) else {
        return (1..=n).map(|i| format!("+{i}")).collect();
    };
    let ((last, style), (prev, _)) = (p[0], p[1]);
    let step = last - prev;
    let monthly =
        (Duration::days(28)..=Duration::days(31)).contains(&step) && last.day() == prev.day();
    (1..=n as i64)
        .map(|i| {
            let t = if monthly {
                add_months(last, i)
            } else {
                last + step * i as i32
            };
            write_stamp(t, style)
        })
        .collect()
}

fn add_months(t: PrimitiveDateTime, n: i64) -> PrimitiveDateTime {
    let months = t.year() as i64 * 12 + (t.month() as i64 - 1) + n;
    let (year, month) = (
        months.div_euclid(12) as i32,
        (months.rem_euclid(12) + 1) as u8,
    );
    let month = Month::try_from(month).unwrap_or(Month::January);
    let day = t.day().min(time::util::days_in_month(month, year));
    time::Date::from_calendar_date(year, month, day)
        .map(|d| PrimitiveDateTime::new(d, t.time()))
        .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forecast_rows_continue_the_input_timestamps_in_its_format() {
        let plain = [
            "2026-11-28 10:00:00".to_string(),
            "2026-11-28 11:00:00".into(),
        ];
        assert_eq!(
            next_stamps(&plain, 2),
            ["2026-11-28 12:00:00", "2026-11-28 13:00:00"]
        );
        let rfc = [
            "2026-11-28T10:00:00Z".to_string(),
            "2026-11-28T10:30:00+00:00".into(),
        ];
        assert_eq!(next_stamps(&rfc, 1), ["2026-11-28T11:00:00Z"]);
        let epoch = ["1795860000000".to_string(), "1795863600000".into()];
        assert_eq!(next_stamps(&epoch, 1), ["1795867200000"]);
        let monthly = [
            "2026-01-31 00:00:00".to_string(),
            "2026-02-28 00:00:00".into(),
        ];
        assert_eq!(step_seconds(&monthly), Some(28.0 * 86_400.0));
        assert_eq!(next_stamps(&["a".into(), "b".into()], 2), ["+1", "+2"]);
    }

    #[test]
    fn the_horizon_is_steps_or_a_duration() {
        assert_eq!(horizon_steps("48", Some(3_600.0)).unwrap(), 48);
        assert_eq!(horizon_steps("2d", Some(3_600.0)).unwrap(), 48);
        assert_eq!(horizon_steps("90m", Some(3_600.0)).unwrap(), 2);
        assert!(horizon_steps("2d", None)
            .unwrap_err()
            .to_string()
            .contains("no step"));
        assert!(horizon_steps("0", Some(60.0)).is_err());
        assert!(horizon_steps("soon", Some(60.0))
            .unwrap_err()
            .to_string()
            .starts_with("--horizon: `soon`"));
    }
}
