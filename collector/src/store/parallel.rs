//! Work on every core with results handed over in order: block decoding for scans that read
//! many blocks, while the calling thread folds what is decoded.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

/// Runs `work` on each item on up to one thread per core and calls `consume` with the results
/// in the items' order, on the calling thread. Stops at the first error and returns it.
pub fn in_order<T: Sync, R: Send, E: Send>(
    items: &[T],
    work: impl Fn(&T) -> Result<R, E> + Sync,
    mut consume: impl FnMut(R),
) -> Result<(), E> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len());
    if workers <= 1 {
        for item in items {
            consume(work(item)?);
        }
        return Ok(());
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::sync_channel::<(usize, Result<R, E>)>(workers * 2);
    std::thread::scope(|s| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, stop, work) = (&next, &stop, &work);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= items.len() || stop.load(Ordering::Relaxed) {
                    break;
                }
                if tx.send((i, work(&items[i]))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut waiting = BTreeMap::new();
        let mut want = 0;
        for (i, result) in rx {
            waiting.insert(i, result);
            while let Some(result) = waiting.remove(&want) {
                want += 1;
                match result {
                    Ok(r) => consume(r),
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_arrive_in_order_and_errors_stop() {
        let items: Vec<u64> = (0..500).collect();
        let mut seen = Vec::new();
        in_order(&items, |x| Ok::<_, ()>(x * 2), |r| seen.push(r)).unwrap();
        assert_eq!(seen, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        let mut before = 0;
        let err = in_order(
            &items,
            |x| if *x == 100 { Err(*x) } else { Ok(*x) },
            |_| before += 1,
        );
        assert_eq!((err, before), (Err(100), 100));
    }
}
