//! Model speed: a forecast fit + predict (model choice by backtest included) on 2,000 hourly
//! points with a daily season, and anomaly scoring of 100,000 points. Prints `key=value` figures
//! (median of 11 runs). Run with `cargo bench -p tda-models --bench fit`.

use std::time::Instant;

use tda_models::anomaly::{score_series, AnomalyConfig};
use tda_models::forecast::{forecast, ForecastConfig};

fn median_ms(mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..11)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[5]
}

fn main() {
    let mut state = 0x2545_F491_4F6C_DD1D_u64;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 1000) as f64 / 100.0
    };
    let hourly: Vec<f64> = (0..2_000)
        .map(|i| {
            200.0
                + 0.05 * i as f64
                + 40.0 * (i as f64 * std::f64::consts::TAU / 24.0).sin()
                + noise()
        })
        .collect();
    let mut model = String::new();
    let ms = median_ms(|| model = forecast(&hourly, 24, &ForecastConfig::default()).model);
    println!("forecast_fit_predict_2000_hourly_ms={ms:.1} model=\"{model}\"");
    let long: Vec<f64> = (0..100_000).map(|i| hourly[i % 2_000] + noise()).collect();
    let ms = median_ms(|| {
        score_series(&long, AnomalyConfig::default());
    });
    println!("anomaly_score_100k_points_ms={ms:.1}");
}
