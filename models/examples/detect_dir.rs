//! Scores every `timestamp,value` CSV under a NAB-style data directory (`DIR/<category>/<file>`)
//! with the anomaly detector, once per parameter set, for `scripts/score-models`' per-category and
//! leave-one-category-out figures:
//!
//! `cargo run --release -p tda-models --example detect_dir -- DATA_DIR OUT_DIR [PARAMS.jsonl]`
//!
//! Each line of `PARAMS.jsonl` is an `AnomalyConfig` (JSON; missing fields take the defaults);
//! set `k` (0-based) is written to `OUT_DIR/k/<category>/<file>`. Without the file, one set: the
//! defaults, with the calendar's day and week from the timestamps' step. Each row holds the score and the kind of the feature that scored highest. Prints
//! the seconds the scoring took.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tda_models::anomaly::{AnomalyConfig, Detector, Kind};

fn main() {
    if let Err(e) = run() {
        eprintln!("detect_dir: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (data, out) = match (args.first(), args.get(1)) {
        (Some(d), Some(o)) => (PathBuf::from(d), PathBuf::from(o)),
        _ => return Err("usage: detect_dir DATA_DIR OUT_DIR [PARAMS.jsonl]".into()),
    };
    let configs = match args.get(2) {
        Some(p) => read_params(Path::new(p))?,
        None => vec![AnomalyConfig::default()],
    };
    let files = csv_files(&data)?;
    let series: Vec<(PathBuf, Vec<String>, Vec<f64>)> = files
        .iter()
        .map(|f| read_series(f).map(|(t, v)| (f.strip_prefix(&data).unwrap_or(f).into(), t, v)))
        .collect::<Result<_, _>>()?;
    let start = Instant::now();
    let jobs: Vec<(usize, usize)> = (0..configs.len())
        .flat_map(|k| (0..series.len()).map(move |i| (k, i)))
        .collect();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let j = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&(k, i)) = jobs.get(j) else { break };
                let (rel, stamps, values) = &series[i];
                let step = step_secs(stamps);
                let config = step.map_or(configs[k], |s| configs[k].with_step(s));
                let mut d = Detector::new(config);
                let scores: Vec<(f64, Kind)> =
                    values.iter().map(|v| d.score_with_kind(*v)).collect();
                let path = out.join(k.to_string()).join(rel);
                if let Err(e) = write_scores(&path, stamps, &scores) {
                    eprintln!("detect_dir: {}: {e}", path.display());
                    std::process::exit(1);
                }
            });
        }
    });
    println!(
        "scored {} files x {} parameter sets in {:.3} s",
        series.len(),
        configs.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn read_params(path: &Path) -> Result<Vec<AnomalyConfig>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))
        })
        .collect()
}

fn csv_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "csv") {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn read_series(path: &Path) -> Result<(Vec<String>, Vec<f64>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (mut stamps, mut values) = (Vec::new(), Vec::new());
    for (n, line) in text.lines().enumerate().skip(1) {
        let mut cells = line.split(',');
        let (Some(t), Some(v)) = (cells.next(), cells.next()) else {
            continue;
        };
        let v: f64 = v
            .trim()
            .parse()
            .map_err(|_| format!("{}:{}: value `{v}` is not a number", path.display(), n + 1))?;
        stamps.push(t.to_string());
        values.push(v);
    }
    Ok((stamps, values))
}

/// The median step of the first timestamps (`YYYY-MM-DD HH:MM:SS`), in seconds.
fn step_secs(stamps: &[String]) -> Option<f64> {
    let secs = |s: &str| -> Option<i64> {
        let n: Vec<i64> = s
            .split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty())
            .take(6)
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        let (y, m, d) = (*n.first()?, *n.get(1)?, *n.get(2)?);
        // Days from the civil date (proleptic Gregorian), as in Howard Hinnant's algorithm.
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
        let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy;
        Some(days * 86_400 + n.get(3)? * 3_600 + n.get(4)? * 60 + n.get(5).copied().unwrap_or(0))
    };
    let t: Vec<i64> = stamps.iter().take(25).filter_map(|s| secs(s)).collect();
    let mut steps: Vec<i64> = t.windows(2).map(|w| w[1] - w[0]).collect();
    steps.sort_unstable();
    steps.get(steps.len() / 2).map(|s| *s as f64)
}

fn write_scores(path: &Path, stamps: &[String], scores: &[(f64, Kind)]) -> std::io::Result<()> {
    use std::fmt::Write as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut out = String::from("timestamp,anomaly_score,kind\n");
    for (t, (s, kind)) in stamps.iter().zip(scores) {
        let _ = writeln!(out, "{t},{s:.6},{}", kind.describe());
    }
    std::fs::write(path, out)
}
