//! Usage statistics: total requests, active users, per-feature usage and requests per interval.

pub use tda_schema::answers::{Bucket, FeatureUsage, UsageStats};

use std::collections::{BTreeMap, HashMap};

use tda_schema::{AggregationLevel, Event, Timestamp};

use super::{Latency, Range, QUANTILES};
use crate::sketch::distinct::{self, Distinct};
use crate::sketch::quantile::Sketch;
use crate::store::aggregate::{EventQuery, Group};
use crate::store::rollup::{Rollup, MINUTE_MS};
use crate::store::Filter;
use crate::store::{Fold, Storage, StoreError};

#[derive(Default)]
struct FeatureAcc {
    requests: u64,
    errors: u64,
    users: Distinct,
}

/// Folds events into [`UsageStats`].
pub struct UsageAcc {
    range: (i64, i64),
    level: AggregationLevel,
    total: u64,
    errors: u64,
    users: Distinct,
    features: HashMap<String, FeatureAcc>,
    buckets: BTreeMap<i64, (u64, u64)>,
    latency: Sketch,
}

impl UsageAcc {
    /// An accumulator for `[from, to)` bucketed at `level`.
    pub fn new(from: i64, to: i64, level: AggregationLevel) -> Self {
        UsageAcc {
            range: (from, to),
            level,
            total: 0,
            errors: 0,
            users: Distinct::default(),
            features: HashMap::new(),
            buckets: BTreeMap::new(),
            latency: Sketch::new(),
        }
    }

    /// Counts one event.
    pub fn add(&mut self, e: &Event) {
        let failed = e.is_error() as u64;
        self.total += 1;
        self.errors += failed;
        let user = distinct::hash(&e.user_id);
        self.users.add_hash(user);
        let f = self.features.entry(e.feature.clone()).or_default();
        f.requests += 1;
        f.errors += failed;
        f.users.add_hash(user);
        self.add_to_bucket(e.timestamp.0, 1, failed);
        if let Some(l) = e.latency_ms {
            self.latency.add(l);
        }
    }

    fn add_to_bucket(&mut self, t: i64, requests: u64, errors: u64) {
        let width = self.level.millis();
        let b = self.buckets.entry(t.div_euclid(width) * width).or_default();
        b.0 += requests;
        b.1 += errors;
    }

    /// Adds the rollup of (part of) a whole hour inside the range.
    pub fn add_rollup(&mut self, r: &Rollup) {
        for (name, f) in &r.features {
            let (mut requests, mut errors) = (0, 0);
            for (m, c) in &f.minutes {
                self.add_to_bucket(r.hour + i64::from(*m) * MINUTE_MS, c.requests, c.errors);
                requests += c.requests;
                errors += c.errors;
            }
            self.total += requests;
            self.errors += errors;
            let acc = self.features.entry(name.clone()).or_default();
            acc.requests += requests;
            acc.errors += errors;
            acc.users.merge(&f.users);
            self.users.merge(&f.users);
            self.latency.merge(&f.latency);
        }
    }

    /// The finished statistics.
    pub fn finish(self, profile: Option<String>) -> UsageStats {
        let features = self
            .features
            .into_iter()
            .map(|(feature, f)| FeatureUsage {
                feature,
                requests: f.requests,
                users: f.users.count(),
                errors: f.errors,
            })
            .collect();
        let totals = (self.total, self.users.count(), self.errors);
        let latency = super::latency_of_sketch(&self.latency);
        let (from, to) = self.range;
        assemble(
            (from, to, self.level),
            profile,
            totals,
            features,
            &self.buckets,
            latency,
        )
    }
}

/// The statistics from their parts: `totals` are requests, users and errors; `buckets` the
/// requests and errors by bucket start (missing buckets are zero).
fn assemble(
    (from, to, level): (i64, i64, AggregationLevel),
    profile: Option<String>,
    (total, users, errors): (u64, u64, u64),
    mut features: Vec<FeatureUsage>,
    buckets: &BTreeMap<i64, (u64, u64)>,
    latency_ms: Latency,
) -> UsageStats {
    features.sort_by(|a, b| {
        b.requests
            .cmp(&a.requests)
            .then_with(|| a.feature.cmp(&b.feature))
    });
    let series = bucket_starts(from, to, level.millis())
        .map(|start| {
            let (requests, errors) = buckets.get(&start).copied().unwrap_or_default();
            Bucket {
                start: Timestamp(start).to_rfc3339(),
                start_ms: start,
                requests,
                errors,
            }
        })
        .collect();
    UsageStats {
        kind: "usage".into(),
        range: Range::new(from, to),
        profile,
        aggregation_level: level,
        total_requests: total,
        active_users: users,
        errors,
        features,
        series,
        latency_ms,
    }
}

/// The statistics computed by the backend, when it aggregates itself.
fn pushed_down(
    store: &dyn Storage,
    (from, to, level): (i64, i64, AggregationLevel),
    profile: Option<String>,
) -> Result<Option<UsageStats>, StoreError> {
    let filter = Filter::default();
    let query = |group, quantiles| EventQuery {
        from,
        to,
        filter: &filter,
        group,
        quantiles,
    };
    let Some(store) = store.pushdown() else {
        return Ok(None);
    };
    let all = store.aggregate_events(&query(Group::All, &QUANTILES))?;
    let all = all.into_iter().next();
    let features = store
        .aggregate_events(&query(Group::Feature, &[]))?
        .into_iter()
        .map(|f| FeatureUsage {
            feature: f.key,
            requests: f.requests,
            users: f.users,
            errors: f.errors,
        })
        .collect();
    let width = level.millis();
    let origin = from.div_euclid(width) * width;
    let buckets = store
        .aggregate_events(&query(Group::Step { origin, width }, &[]))?
        .into_iter()
        .map(|b| (b.step(), (b.requests, b.errors)))
        .collect();
    let totals = all
        .as_ref()
        .map_or((0, 0, 0), |a| (a.requests, a.users, a.errors));
    let latency = super::latency_of_summary(&all.map(|a| a.latency).unwrap_or_default());
    Ok(Some(assemble(
        (from, to, level),
        profile,
        totals,
        features,
        &buckets,
        latency,
    )))
}

/// Starts of the buckets of width `width` that overlap `[from, to)`.
pub fn bucket_starts(from: i64, to: i64, width: i64) -> impl Iterator<Item = i64> {
    let first = from.div_euclid(width) * width;
    (0..)
        .map(move |i| first + i * width)
        .take_while(move |s| *s < to)
}

/// Number of buckets a series over `[from, to)` would have.
pub fn bucket_count(from: i64, to: i64, width: i64) -> i64 {
    if to <= from {
        return 0;
    }
    (to - 1).div_euclid(width) - from.div_euclid(width) + 1
}

impl Fold for UsageAcc {
    fn event(&mut self, e: &Event) {
        self.add(e);
    }

    fn rollup(&mut self, r: &Rollup) {
        self.add_rollup(r);
    }
}

/// Usage stats over `[from, to)` at an aggregation level (whole hours from rollups).
pub fn compute(
    store: &dyn Storage,
    from: i64,
    to: i64,
    level: AggregationLevel,
    profile: Option<String>,
) -> Result<UsageStats, StoreError> {
    if let Some(s) = pushed_down(store, (from, to, level), profile.clone())? {
        return Ok(s);
    }
    let mut acc = UsageAcc::new(from, to, level);
    crate::store::fold_range(store, from, to, &mut acc)?;
    Ok(acc.finish(profile))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_860_000_000; // 10:00:00 UTC

    fn ev(offset_s: i64, user: &str, feature: &str, status: u16, latency: f64) -> Event {
        serde_json::from_value(serde_json::json!({
            "timestamp": T0 + offset_s * 1000, "user_id": user, "feature": feature,
            "status": status, "latency_ms": latency
        }))
        .unwrap()
    }

    #[test]
    fn counts_users_features_and_buckets() {
        let mut acc = UsageAcc::new(T0, T0 + 180_000, AggregationLevel::Minute);
        for e in [
            ev(1, "a", "generate", 200, 10.0),
            ev(2, "a", "generate", 500, 20.0),
            ev(70, "b", "export", 200, 30.0),
            ev(75, "a", "export", 200, 40.0),
        ] {
            acc.add(&e);
        }
        let s = acc.finish(Some("system-usage".into()));
        assert_eq!((s.total_requests, s.active_users, s.errors), (4, 2, 1));
        assert_eq!(
            s.features,
            vec![
                FeatureUsage {
                    feature: "export".into(),
                    requests: 2,
                    users: 2,
                    errors: 0
                },
                FeatureUsage {
                    feature: "generate".into(),
                    requests: 2,
                    users: 1,
                    errors: 1
                },
            ]
        );
        let counts: Vec<_> = s.series.iter().map(|b| (b.requests, b.errors)).collect();
        assert_eq!(counts, vec![(2, 1), (2, 0), (0, 0)]);
        assert_eq!(s.series[1].start, "2026-11-28T10:01:00Z");
        assert_eq!(s.latency_ms.count, 4);
    }

    #[test]
    fn bucket_counts_cover_partial_buckets() {
        assert_eq!(bucket_count(T0, T0 + 60_000, 60_000), 1);
        assert_eq!(bucket_count(T0 + 1, T0 + 60_001, 60_000), 2);
        assert_eq!(bucket_count(T0, T0, 60_000), 0);
        assert_eq!(bucket_starts(T0 + 1, T0 + 60_001, 60_000).count(), 2);
    }
}
