//! The one interface every model has: built from its config, fitted to a series' points in time
//! order (again with newer points: a streaming model keeps its state between fits), then asked
//! for its answer. State is serde, so the collector persists it.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::anomaly::{AnomalyConfig, Detector, Scored};
use crate::forecast::{forecast, Forecast, ForecastConfig};
use crate::pattern::{change_points, ChangePoint};
use crate::seasonality::{significant_periods, Period};
use crate::trend::{trend, Trend};

/// A model over a regularly spaced series.
pub trait Model: Serialize + DeserializeOwned {
    /// Its settings; the defaults serve every series.
    type Config: Default + Clone;
    /// What it says about the points it was fitted to.
    type Output: Serialize;
    /// Its name in profiles (`models.run`) and answers.
    const KIND: &'static str;
    /// A model that has seen nothing.
    fn build(config: Self::Config) -> Self;
    /// Learns from the next points, in time order.
    fn fit(&mut self, points: &[f64]);
    /// Its answer over everything fitted so far.
    fn output(&self) -> Self::Output;
}

/// Builds a model, fits it to `points` and answers.
pub fn run<M: Model>(config: M::Config, points: &[f64]) -> M::Output {
    let mut m = M::build(config);
    m.fit(points);
    m.output()
}

/// Points a history-based model keeps (the oldest go first).
const MAX_HISTORY: usize = 10_000;

/// Points in time order, bounded.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct History(Vec<f64>);

impl History {
    fn extend(&mut self, points: &[f64]) {
        self.0.extend_from_slice(points);
        let excess = self.0.len().saturating_sub(MAX_HISTORY);
        self.0.drain(..excess);
    }
}

/// Trend: Theil-Sen slope with Mann-Kendall significance over the history.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrendModel {
    history: History,
}

impl Model for TrendModel {
    type Config = ();
    type Output = Option<Trend>;
    const KIND: &'static str = "trend";
    fn build(_: ()) -> Self {
        TrendModel::default()
    }
    fn fit(&mut self, points: &[f64]) {
        self.history.extend(points);
    }
    fn output(&self) -> Option<Trend> {
        trend(&self.history.0)
    }
}

/// Forecast of `config.horizon` steps after the history.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ForecastModel {
    config: ForecastConfig,
    history: History,
}

impl Model for ForecastModel {
    type Config = ForecastConfig;
    type Output = Forecast;
    const KIND: &'static str = "forecast";
    fn build(config: ForecastConfig) -> Self {
        ForecastModel {
            config,
            history: History::default(),
        }
    }
    fn fit(&mut self, points: &[f64]) {
        self.history.extend(points);
    }
    fn output(&self) -> Forecast {
        forecast(&self.history.0, self.config.horizon, &self.config)
    }
}

/// Seasonal periods and change points of the history.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PatternModel {
    history: History,
}

/// What [`PatternModel`] finds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Patterns {
    /// Seasonal periods, main first.
    pub periods: Vec<Period>,
    /// Level and slope shifts.
    pub change_points: Vec<ChangePoint>,
}

impl Model for PatternModel {
    type Config = ();
    type Output = Patterns;
    const KIND: &'static str = "pattern";
    fn build(_: ()) -> Self {
        PatternModel::default()
    }
    fn fit(&mut self, points: &[f64]) {
        self.history.extend(points);
    }
    fn output(&self) -> Patterns {
        Patterns {
            periods: significant_periods(&self.history.0),
            change_points: change_points(&self.history.0),
        }
    }
}

/// Anomaly scores: the streaming detector; its answer is the scores of the last fit's points.
impl Model for Detector {
    type Config = AnomalyConfig;
    type Output = Vec<Scored>;
    const KIND: &'static str = "anomaly";
    fn build(config: AnomalyConfig) -> Self {
        Detector::new(config)
    }
    fn fit(&mut self, points: &[f64]) {
        let scores = points.iter().map(|p| self.scored(*p)).collect();
        self.last_scores = scores;
    }
    fn output(&self) -> Vec<Scored> {
        self.last_scores.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_runs_through_the_trait_and_streams_keep_state() {
        let y: Vec<f64> = (0..400)
            .map(|i| 10.0 + 0.1 * i as f64 + 3.0 * (i as f64 * std::f64::consts::TAU / 12.0).sin())
            .collect();
        assert_eq!(run::<TrendModel>((), &y).unwrap().direction, "rising");
        assert_eq!(
            run::<ForecastModel>(ForecastConfig::default(), &y)
                .mean
                .len(),
            24
        );
        assert_eq!(run::<PatternModel>((), &y).periods[0].steps, 12);
        let whole = run::<Detector>(AnomalyConfig::default(), &y);
        let mut d = Detector::build(AnomalyConfig::default());
        d.fit(&y[..250]);
        let saved = serde_json::to_string(&d).unwrap();
        let mut d: Detector = serde_json::from_str(&saved).unwrap();
        d.fit(&y[250..]);
        assert_eq!(
            d.output(),
            whole[250..].to_vec(),
            "a saved and restored stream scores on"
        );
    }
}
