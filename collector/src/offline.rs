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

/// `tda forecast`: `horizon` rows of forecast and 95 % interval after the last row.
pub fn forecast_csv(input: &Path, horizon: usize, output: &Path) -> anyhow::Result<String> {
    let series = read_csv(input)?;
    if series.values.is_empty() {
        bail!("{}: no rows to forecast from", input.display());
    }
    let config = ForecastConfig {
        seasons: step_seconds(&series.stamps)
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

/// `YYYY-MM-DD HH:MM:SS`, as the benchmark files write timestamps.
fn format() -> Vec<time::format_description::BorrowedFormatItem<'static>> {
    time::format_description::parse_borrowed::<2>("[year]-[month]-[day] [hour]:[minute]:[second]")
        .unwrap_or_default()
}

/// The median step between the last timestamps, in seconds, when they are
/// `YYYY-MM-DD HH:MM:SS`.
fn step_seconds(stamps: &[String]) -> Option<f64> {
    let format = format();
    let parsed: Vec<PrimitiveDateTime> = stamps
        .iter()
        .rev()
        .take(25)
        .filter_map(|s| PrimitiveDateTime::parse(s, &format).ok())
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

/// The timestamps after the last one, continuing its step (calendar months for monthly data);
/// step numbers when the timestamps are not `YYYY-MM-DD HH:MM:SS`.
fn next_stamps(stamps: &[String], n: usize) -> Vec<String> {
    let format = format();
    let parsed: Option<Vec<PrimitiveDateTime>> = stamps
        .iter()
        .rev()
        .take(3)
        .map(|s| PrimitiveDateTime::parse(s, &format).ok())
        .collect();
    let Some(p) = parsed.filter(|p| p.len() >= 2) else {
        return (1..=n).map(|i| format!("+{i}")).collect();
    };
    let (last, prev) = (p[0], p[1]);
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
            t.format(&format).unwrap_or_default()
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
