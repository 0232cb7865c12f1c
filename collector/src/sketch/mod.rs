//! Mergeable sketches kept in rollups and folded by the analyses: quantiles (DDSketch) and
//! distinct counts (exact, then HyperLogLog). Below storage: they depend only on the codec.

pub mod distinct;
pub mod quantile;
