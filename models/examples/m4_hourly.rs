//! M4 Hourly in one process, for working on the forecaster: forecasts the 48 hours after each of
//! the 414 training series and prints M4's sMAPE and MASE (as `../shared/bench/forecast/eval_m4.py`
//! computes them) with the share of actual values inside the 80 % and 95 % intervals:
//!
//! `cargo run --release -p tda-models --example m4_hourly -- DATA_DIR [PER_SERIES.csv]`
//!
//! DATA_DIR holds `Hourly-train.csv` and `Hourly-test.csv`. With a second argument, each
//! series' figures and chosen model are written there. `eval_m4.py` stays the reference (it
//! runs `tda forecast` and computes OWA); this is the same arithmetic without a process per
//! series.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use tda_models::forecast::{forecast, ForecastConfig};

const H: usize = 48;
const M: usize = 24;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first() else {
        eprintln!("usage: m4_hourly DATA_DIR [PER_SERIES.csv]");
        std::process::exit(2);
    };
    let train = read(&Path::new(dir).join("Hourly-train.csv"));
    let test = read(&Path::new(dir).join("Hourly-test.csv"));
    let start = Instant::now();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = train.len().div_ceil(workers);
    let rows: Vec<Row> = std::thread::scope(|s| {
        let handles: Vec<_> = train
            .chunks(chunk)
            .zip(test.chunks(chunk))
            .map(|(tr, te)| {
                s.spawn(move || {
                    tr.iter()
                        .zip(te)
                        .map(|(a, b)| score(a, b))
                        .collect::<Vec<Row>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let mean = |f: fn(&Row) -> f64| rows.iter().map(f).sum::<f64>() / rows.len() as f64;
    println!(
        "series={} sMAPE={:.3} MASE={:.3} coverage80={:.3} coverage95={:.3} seconds={secs:.2}",
        rows.len(),
        mean(|r| r.smape),
        mean(|r| r.mase),
        mean(|r| r.cover80),
        mean(|r| r.cover95),
    );
    if let Some(path) = args.get(1) {
        let mut out = String::from("series,points,smape,mase,cover95,model\n");
        for r in &rows {
            let _ = writeln!(
                out,
                "{},{},{:.4},{:.4},{:.3},\"{}\"",
                r.name, r.points, r.smape, r.mase, r.cover95, r.model
            );
        }
        if let Err(e) = std::fs::write(path, out) {
            eprintln!("{path}: {e}");
        }
    }
}

struct Row {
    name: String,
    points: usize,
    smape: f64,
    mase: f64,
    cover80: f64,
    cover95: f64,
    model: String,
}

fn score((name, y): &(String, Vec<f64>), (_, truth): &(String, Vec<f64>)) -> Row {
    let config = ForecastConfig {
        seasons: vec![24, 168],
        ..ForecastConfig::default()
    };
    let f = forecast(y, H, &config);
    let smape = 200.0 / H as f64
        * truth
            .iter()
            .zip(&f.mean)
            .map(|(a, b)| {
                let d = a.abs() + b.abs();
                if d > 0.0 {
                    (a - b).abs() / d
                } else {
                    0.0
                }
            })
            .sum::<f64>();
    let scale = (M..y.len()).map(|t| (y[t] - y[t - M]).abs()).sum::<f64>() / (y.len() - M) as f64;
    let mae = truth
        .iter()
        .zip(&f.mean)
        .map(|(a, b)| (a - b).abs())
        .sum::<f64>()
        / H as f64;
    let inside = |lo: &[f64], hi: &[f64]| {
        truth
            .iter()
            .enumerate()
            .filter(|(i, v)| lo[*i] <= **v && **v <= hi[*i])
            .count() as f64
            / H as f64
    };
    Row {
        name: name.clone(),
        points: y.len(),
        smape,
        mase: mae / scale,
        cover80: inside(&f.lower80, &f.upper80),
        cover95: inside(&f.lower95, &f.upper95),
        model: f.model,
    }
}

fn read(path: &Path) -> Vec<(String, Vec<f64>)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        eprintln!("{}: {e}", path.display());
        std::process::exit(1);
    });
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut cells = line.split(',').map(|c| c.trim_matches('"'));
            let name = cells.next()?.to_string();
            let values = cells.filter_map(|c| c.parse::<f64>().ok()).collect();
            Some((name, values))
        })
        .collect()
}
