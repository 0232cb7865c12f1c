//! The dashboard page served at `/`: one self-contained HTML file embedded in the binary that
//! reads the stats API and refreshes itself.

/// The page; its script polls `/api/v1/stats/usage` and `/api/v1/stats/performance`.
pub const PAGE: &str = include_str!("dashboard.html");
