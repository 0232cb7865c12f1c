//! The cardinality-explosion guard: at most `limits.max_features_per_hour` distinct feature
//! names per hour, the series every rollup and chart is keyed by. Events of a feature past the
//! cap are kept under [`OVERFLOW_FEATURE`] (their name in the `tda.overflow_feature` property)
//! and counted, as OpenTelemetry folds measurements past its cardinality limit into one overflow
//! series: nothing accepted is dropped, and a misinstrumented service that puts request ids in
//! `feature` cannot grow the rollups without bound.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use tda_schema::timestamp::HOUR_MS;
use tda_schema::wire::MAX_PROPERTIES;
use tda_schema::Event;

use crate::store::columns::EventColumns;

/// The feature name events past the cap are stored under.
pub const OVERFLOW_FEATURE: &str = "(overflow)";
/// The property that keeps an overflowed event's own feature name (when it has room).
pub const OVERFLOW_PROPERTY: &str = "tda.overflow_feature";
/// Hours kept in memory either side of the present: events older or further ahead are checked
/// against a set that is not kept (rare, and bounded by the batch limits). Kept by the clock, not
/// by the newest event, so one event dated far ahead cannot push the present hours out.
const HOURS_KEPT: i64 = 48;

/// The feature names seen in one hour, and whether the cap was reached in it.
#[derive(Default)]
struct Hour {
    names: HashSet<String>,
    overflowed: bool,
}

/// The feature names seen per hour since the collector started.
#[derive(Default)]
pub struct FeatureGuard {
    hours: Mutex<HashMap<i64, Hour>>,
}

impl FeatureGuard {
    /// Renames the events whose feature would be past `cap` distinct names in its hour; returns
    /// how many were renamed. A `cap` of 0 turns the guard off.
    pub fn fold(&self, events: &mut [Event], cap: usize) -> u64 {
        self.fold_at(events, cap, tda_schema::Timestamp::now().0)
    }

    /// Records the feature names of a decoded block when every one fits under `cap` in its
    /// hour, and says so; `false` (nothing recorded) when some event would be folded: the
    /// caller then builds the events and calls [`FeatureGuard::fold`].
    pub fn admit(&self, c: &EventColumns, cap: usize) -> bool {
        if cap == 0 {
            return true;
        }
        let pairs: BTreeSet<(i64, u32)> = (0..c.len())
            .map(|i| (c.timestamps[i].div_euclid(HOUR_MS), c.features.rows[i]))
            .collect();
        let mut hours = self.hours.lock().unwrap_or_else(|p| p.into_inner());
        let mut new: HashMap<i64, HashSet<&str>> = HashMap::new();
        for (hour, word) in pairs {
            let Some(name) = (word as usize).checked_sub(1).map(|w| &c.features.words[w]) else {
                continue;
            };
            let known = hours.get(&hour).is_some_and(|h| h.names.contains(name));
            if !known && name != OVERFLOW_FEATURE {
                new.entry(hour).or_default().insert(name);
            }
        }
        let room = |hour: &i64, names: &HashSet<&str>| {
            hours.get(hour).map_or(0, |h| h.names.len()) + names.len() <= cap
        };
        if !new.iter().all(|(h, names)| room(h, names)) {
            return false;
        }
        for (hour, names) in new {
            let seen = &mut hours.entry(hour).or_default().names;
            seen.extend(names.into_iter().map(str::to_string));
        }
        let now = tda_schema::Timestamp::now().0.div_euclid(HOUR_MS);
        hours.retain(|h, _| (now - HOURS_KEPT..=now + HOURS_KEPT).contains(h));
        true
    }

    /// [`FeatureGuard::fold`] with the present at `now_ms`.
    fn fold_at(&self, events: &mut [Event], cap: usize, now_ms: i64) -> u64 {
        if cap == 0 {
            return 0;
        }
        let mut hours = self.hours.lock().unwrap_or_else(|p| p.into_inner());
        let mut folded = 0;
        for e in events.iter_mut() {
            let hour = e.timestamp.0.div_euclid(HOUR_MS);
            let seen = hours.entry(hour).or_default();
            if seen.names.contains(&e.feature) || e.feature == OVERFLOW_FEATURE {
                continue;
            }
            if seen.names.len() < cap {
                seen.names.insert(e.feature.clone());
                continue;
            }
            if !seen.overflowed {
                seen.overflowed = true;
                tracing::warn!(hour_start_ms = hour * HOUR_MS, cap, first_overflowed = %e.feature,
                    "limits.max_features_per_hour reached: further feature names this hour are stored as (overflow)");
            }
            let name = std::mem::replace(&mut e.feature, OVERFLOW_FEATURE.to_string());
            if e.properties.len() < MAX_PROPERTIES {
                e.properties.insert(
                    OVERFLOW_PROPERTY.to_string(),
                    serde_json::Value::String(name),
                );
            }
            folded += 1;
        }
        let now = now_ms.div_euclid(HOUR_MS);
        hours.retain(|h, _| (now - HOURS_KEPT..=now + HOURS_KEPT).contains(h));
        folded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: i64, feature: &str) -> Event {
        serde_json::from_value(
            serde_json::json!({"timestamp": t, "user_id": "u", "feature": feature}),
        )
        .unwrap()
    }

    #[test]
    fn names_past_the_cap_fold_into_the_overflow_feature_per_hour() {
        let guard = FeatureGuard::default();
        let t = 1_795_860_000_000;
        let mut first: Vec<Event> = ["a", "b", "a", "c", "d"].iter().map(|f| ev(t, f)).collect();
        assert_eq!(guard.fold_at(&mut first, 2, t), 2);
        let names: Vec<&str> = first.iter().map(|e| e.feature.as_str()).collect();
        assert_eq!(names, ["a", "b", "a", OVERFLOW_FEATURE, OVERFLOW_FEATURE]);
        assert_eq!(first[3].properties[OVERFLOW_PROPERTY], "c");
        // Known names keep passing; the next hour starts afresh; 0 turns the guard off.
        let mut later = vec![ev(t + 1, "b"), ev(t + 1, "e"), ev(t + HOUR_MS, "e")];
        assert_eq!(guard.fold_at(&mut later, 2, t), 1);
        assert_eq!(later[2].feature, "e");
        let mut off = vec![ev(t, "z")];
        assert_eq!(guard.fold_at(&mut off, 0, t), 0);
        assert_eq!(off[0].feature, "z");
    }

    #[test]
    fn a_block_is_admitted_whole_or_not_at_all() {
        let guard = FeatureGuard::default();
        let t = tda_schema::Timestamp::now().0;
        let block = |names: &[&str]| {
            let events: Vec<Event> = names.iter().map(|n| ev(t, n)).collect();
            EventColumns::read(&crate::store::columns::encode(&events)).unwrap()
        };
        assert!(guard.admit(&block(&["a", "b", "a"]), 3));
        assert!(
            guard.admit(&block(&["b", "c"]), 3),
            "one new name, room for it"
        );
        assert!(!guard.admit(&block(&["a", "d"]), 3), "d is past the cap");
        // Nothing of the refused block was recorded: the events fold as they would have.
        let mut events = vec![ev(t, "a"), ev(t, "d")];
        assert_eq!(guard.fold(&mut events, 3), 1);
        assert_eq!(events[1].feature, OVERFLOW_FEATURE);
        assert!(
            guard.admit(&block(&["x", "y", "z", "w"]), 0),
            "0 turns the guard off"
        );
    }

    #[test]
    fn an_event_dated_far_ahead_does_not_reset_the_present_hours() {
        let guard = FeatureGuard::default();
        let t = 1_795_860_000_000;
        let mut first = vec![ev(t, "a"), ev(t, "b")];
        assert_eq!(guard.fold_at(&mut first, 2, t), 0);
        let mut ahead = vec![ev(t + 49 * HOUR_MS, "x")];
        assert_eq!(guard.fold_at(&mut ahead, 2, t), 0);
        let mut more: Vec<Event> = (0..10).map(|i| ev(t, &format!("n{i}"))).collect();
        assert_eq!(guard.fold_at(&mut more, 2, t), 10, "the cap still holds");
    }
}
