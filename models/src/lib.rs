//! Predictive models over regularly spaced series (one value per step): anomaly scores that use
//! only past and current points, seasonal periods, forecasts with prediction intervals, and
//! trends with their significance.

#![forbid(unsafe_code)]

pub use model::{run, Model};

pub mod anomaly;
pub mod forecast;
pub mod model;
pub mod pattern;
pub mod robust;
pub mod seasonality;
pub mod trend;
