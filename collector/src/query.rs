//! Queries over stored data: a series (from events or host samples) bucketed by a step with an
//! aggregation, and a filtered, paginated list of raw events.

pub use tda_schema::answers::{Agg, EventsPage as Page, Point};

use std::collections::BTreeMap;

use tda_schema::Event;

use crate::sketch::distinct::Distinct;
use crate::sketch::quantile::Sketch;
use crate::store::aggregate::{EventAggregate, EventQuery, Group, Summary};
use crate::store::rollup::{Moments, Rollup, HOUR_MS, MINUTE_MS};
use crate::store::{fold_range, fold_range_by_minute, Filter, Fold, Storage, StoreError};

/// Most points one series query returns; a longer range needs a larger step.
pub const MAX_POINTS: i64 = 20_000;
/// Most events one page holds.
pub const MAX_PAGE: usize = 1_000;

/// The series a query can ask for.
pub const EVENT_SERIES: [&str; 4] = ["requests", "errors", "latency_ms", "users"];

#[derive(Default)]
struct Step {
    moments: Moments,
    sketch: Sketch,
    users: Distinct,
}

impl Step {
    fn add(&mut self, v: f64) {
        self.moments.add(v);
        self.sketch.add(v);
    }

    fn value(&self, agg: Agg, step_ms: i64) -> Option<f64> {
        let users = || self.users.count();
        value_of(
            &self.moments,
            |q| self.sketch.quantile(q),
            users,
            agg,
            step_ms,
        )
    }
}

/// A step's value under `agg`, from its values' moments, a quantile function and a distinct
/// count.
fn value_of(
    m: &Moments,
    quantile: impl FnOnce(f64) -> Option<f64>,
    users: impl FnOnce() -> u64,
    agg: Agg,
    step_ms: i64,
) -> Option<f64> {
    let some = (m.count > 0).then_some(());
    match agg {
        Agg::Count => Some(m.count as f64),
        Agg::Sum => Some(m.sum),
        Agg::Rate => Some(m.sum * 1000.0 / step_ms as f64),
        Agg::Avg => some.map(|_| m.sum / m.count as f64),
        Agg::Min => some.map(|_| m.min),
        Agg::Max => some.map(|_| m.max),
        Agg::Quantile(q) => quantile(f64::from(q) / 100.0),
        Agg::Distinct => Some(users() as f64),
    }
}

/// The quantile an aggregation asks for, if any.
fn quantile_of(agg: Agg) -> Vec<f64> {
    match agg {
        Agg::Quantile(q) => vec![f64::from(q) / 100.0],
        _ => Vec::new(),
    }
}

/// The moments of the values of series `name` in an aggregated group of events.
fn moments_of(name: &str, a: &EventAggregate) -> Moments {
    let ones = |n: u64| Moments {
        count: n,
        sum: n as f64,
        min: 1.0,
        max: 1.0,
    };
    match name {
        "requests" => ones(a.requests),
        "errors" => ones(a.errors),
        "latency_ms" => summary_moments(&a.latency),
        _ => Moments::default(),
    }
}

fn summary_moments(s: &Summary) -> Moments {
    Moments {
        count: s.count,
        sum: s.sum,
        min: s.min,
        max: s.max,
    }
}

/// The series computed by the backend, when it aggregates itself: by step start, the value.
fn pushed_down(
    store: &dyn Storage,
    name: &str,
    (from, to, step_ms): (i64, i64, i64),
    agg: Agg,
    filter: &Filter,
) -> Result<Option<BTreeMap<i64, Option<f64>>>, StoreError> {
    let Some(store) = store.pushdown() else {
        return Ok(None);
    };
    let quantiles = quantile_of(agg);
    if !EVENT_SERIES.contains(&name) {
        let range = (from, to, step_ms);
        let steps = store.aggregate_samples(name, range, filter.agent.as_deref(), &quantiles)?;
        return Ok(Some(
            steps
                .into_iter()
                .map(|s| {
                    let q = |_| s.values.quantiles.first().copied();
                    let m = summary_moments(&s.values);
                    (s.step, value_of(&m, q, || 0, agg, step_ms))
                })
                .collect(),
        ));
    }
    let q = EventQuery {
        from,
        to,
        filter,
        group: Group::Step {
            origin: from,
            width: step_ms,
        },
        quantiles: if name == "latency_ms" {
            &quantiles
        } else {
            &[]
        },
    };
    let groups = store.aggregate_events(&q)?;
    let users = name == "users";
    Ok(Some(
        groups
            .into_iter()
            .map(|a| {
                let m = moments_of(name, &a);
                let quantile = |_| match name {
                    "latency_ms" => a.latency.quantiles.first().copied(),
                    _ => (m.count > 0).then_some(1.0),
                };
                let n = if users { a.users } else { 0 };
                (a.step(), value_of(&m, quantile, || n, agg, step_ms))
            })
            .collect(),
    ))
}

/// Folds events (and, where the query allows, rollups) of an event series into steps.
struct EventSeries<'a> {
    name: &'a str,
    filter: &'a Filter,
    from: i64,
    step_ms: i64,
    steps: BTreeMap<i64, Step>,
}

impl EventSeries<'_> {
    fn step(&mut self, t: i64) -> &mut Step {
        let slot = self.from + (t - self.from).div_euclid(self.step_ms) * self.step_ms;
        self.steps.entry(slot).or_default()
    }

    /// Whether rollups give this query's exact answer: no per-event filter, and steps that
    /// hold whole rollup cells (minutes, or hours for sketches).
    fn rollups_serve(name: &str, filter: &Filter, from: i64, step_ms: i64, agg: Agg) -> bool {
        let unit = match agg {
            Agg::Quantile(_) | Agg::Distinct => HOUR_MS,
            _ => MINUTE_MS,
        };
        let sketch_ok = match agg {
            Agg::Quantile(_) => name == "latency_ms",
            Agg::Distinct => name == "users",
            _ => name != "users",
        };
        filter.user.is_none()
            && filter.status.is_none()
            && filter.labels.is_empty()
            && sketch_ok
            && step_ms % unit == 0
            && from.rem_euclid(unit) == 0
    }
}

impl EventSeries<'_> {
    /// Whether rollups' minute cells give this query's exact answer wherever a whole minute
    /// lies inside the range: counts and latency moments, no per-event filter, and no step
    /// boundary inside a minute (whole-minute steps from a whole minute, or a single step).
    fn minutes_serve(name: &str, filter: &Filter, range: (i64, i64, i64), agg: Agg) -> bool {
        let (from, to, step_ms) = range;
        let cells = !matches!(agg, Agg::Quantile(_) | Agg::Distinct) && name != "users";
        let uncut =
            (from.rem_euclid(MINUTE_MS) == 0 && step_ms % MINUTE_MS == 0) || to - from <= step_ms;
        filter.user.is_none()
            && filter.status.is_none()
            && filter.labels.is_empty()
            && cells
            && uncut
    }
}

impl Fold for EventSeries<'_> {
    fn event(&mut self, e: &Event) {
        if !self.filter.matches(e) {
            return;
        }
        let name = self.name;
        let step = self.step(e.timestamp.0);
        match name {
            "requests" => step.add(1.0),
            "errors" if e.is_error() => step.add(1.0),
            "latency_ms" => e.latency_ms.into_iter().for_each(|l| step.add(l)),
            "users" => step.users.add(&e.user_id),
            _ => {}
        }
    }

    fn rollup(&mut self, r: &Rollup) {
        let wanted = |f: &&String| self.filter.feature.as_ref().is_none_or(|w| w == *f);
        for (_, f) in r.features.iter().filter(|(f, _)| wanted(f)) {
            let name = self.name;
            if name == "users" || name == "latency_ms" {
                let step = self.step(r.hour);
                step.users.merge(&f.users);
                step.sketch.merge(&f.latency);
            }
            for (m, c) in &f.minutes {
                let ones = |n: u64| Moments {
                    count: n,
                    sum: n as f64,
                    min: 1.0,
                    max: 1.0,
                };
                let moments = match name {
                    "requests" => ones(c.requests),
                    "errors" => ones(c.errors),
                    "latency_ms" => c.latency,
                    _ => continue,
                };
                self.step(r.hour + i64::from(*m) * MINUTE_MS)
                    .moments
                    .merge(&moments);
            }
        }
    }
}

/// A series over `[from, to)` in steps of `step_ms`.
pub fn series(
    store: &dyn Storage,
    name: &str,
    from: i64,
    to: i64,
    step_ms: i64,
    agg: Agg,
    filter: &Filter,
) -> Result<Vec<Point>, StoreError> {
    let range = (from, to, step_ms);
    let values = match pushed_down(store, name, range, agg, filter)? {
        Some(values) => values,
        None => folded(store, name, range, agg, filter)?
            .into_iter()
            .map(|(t, s)| (t, s.value(agg, step_ms)))
            .collect(),
    };
    let empty = Step::default().value(agg, step_ms);
    Ok((0..)
        .map(|i| from + i * step_ms)
        .take_while(|t| *t < to)
        .map(|t| Point {
            t,
            v: values.get(&t).copied().unwrap_or(empty),
        })
        .collect())
}

/// The steps of a series folded in the collector from rollups, events or samples.
fn folded(
    store: &dyn Storage,
    name: &str,
    (from, to, step_ms): (i64, i64, i64),
    agg: Agg,
    filter: &Filter,
) -> Result<BTreeMap<i64, Step>, StoreError> {
    if EVENT_SERIES.contains(&name) {
        let mut acc = EventSeries {
            name,
            filter,
            from,
            step_ms,
            steps: BTreeMap::new(),
        };
        if EventSeries::minutes_serve(name, filter, (from, to, step_ms), agg) {
            fold_range_by_minute(store, from, to, &mut acc)?;
        } else if EventSeries::rollups_serve(name, filter, from, step_ms, agg) {
            fold_range(store, from, to, &mut acc)?;
        } else if !filter.labels.is_empty() {
            store.scan_events(from, to, &mut |e| acc.event(e))?;
        } else {
            store.scan_event_facts(from, to, &mut |e| acc.event(e))?;
        }
        return Ok(acc.steps);
    }
    // One step per slot, indexed by its number (the API asks for at most MAX_POINTS; a caller
    // asking for more gets them in a map); the quantile sketch is fed only when read.
    let count = (to - from + step_ms - 1) / step_ms;
    let quantile = matches!(agg, Agg::Quantile(_));
    let add = |step: &mut Step, v: f64| {
        step.moments.add(v);
        if quantile {
            step.sketch.add(v);
        }
    };
    let samples = (from, to);
    if count > MAX_POINTS {
        let mut steps: BTreeMap<i64, Step> = BTreeMap::new();
        let slot = |t: i64| from + (t - from).div_euclid(step_ms) * step_ms;
        store.scan_sample_series(samples, filter.agent.as_deref(), name, &mut |t, v| {
            add(steps.entry(slot(t)).or_default(), v)
        })?;
        return Ok(steps);
    }
    let mut steps: Vec<Step> = std::iter::repeat_with(Step::default)
        .take(count.max(0) as usize)
        .collect();
    store.scan_sample_series(samples, filter.agent.as_deref(), name, &mut |t, v| {
        if t >= from {
            if let Some(step) = steps.get_mut(((t - from) / step_ms) as usize) {
                add(step, v);
            }
        }
    })?;
    Ok((0..)
        .map(|i| from + i * step_ms)
        .zip(steps)
        .filter(|(_, s)| s.moments.count > 0)
        .collect())
}

/// At least the first `wanted` events of `range` matching `filter` (all of them if fewer), in
/// time order: read a window at a time, oldest first, stopping after the window that fills the
/// page, since every event of a later window comes after every event of this one. A window is
/// an hour, doubling (up to a day) while windows come back empty, so a range reaching far past
/// the data costs few reads; the range is bounded by the timestamps an event can have.
fn first_events_by_window(
    store: &dyn Storage,
    (from, to): (i64, i64),
    filter: &Filter,
    wanted: usize,
) -> Result<Vec<Event>, StoreError> {
    use tda_schema::timestamp::{DAY_MS, MAX_MS, MIN_MS};
    let mut all = Vec::new();
    let (mut start, to) = (from.max(MIN_MS), to.min(MAX_MS));
    let mut window = HOUR_MS;
    while start < to && all.len() < wanted {
        let end = ((start.div_euclid(HOUR_MS) * HOUR_MS).saturating_add(window)).min(to);
        let began = all.len();
        store.scan_events(start, end, &mut |e| {
            if filter.matches(e) {
                all.push(e.clone())
            }
        })?;
        // Stable: ties keep the store's (deterministic) order.
        all[began..].sort_by_key(|e| e.timestamp);
        window = if all.len() == began {
            (window * 2).min(DAY_MS)
        } else {
            HOUR_MS
        };
        start = end;
    }
    Ok(all)
}

/// Events in `[from, to)` matching `filter`, oldest first, `limit` per page. The cursor is
/// `<timestamp>.<events already returned at that timestamp>`.
pub fn events(
    store: &dyn Storage,
    from: i64,
    to: i64,
    filter: &Filter,
    limit: usize,
    cursor: Option<&str>,
) -> Result<Page, String> {
    let (after_ts, skip) = match cursor {
        Some(c) => {
            let (t, n) = c
                .split_once('.')
                .ok_or_else(|| format!("cursor: `{c}` is not one this API gave"))?;
            (
                t.parse::<i64>()
                    .map_err(|_| format!("cursor: `{c}` is not one this API gave"))?,
                n.parse::<usize>()
                    .map_err(|_| format!("cursor: `{c}` is not one this API gave"))?,
            )
        }
        None => (from, 0),
    };
    let range = (after_ts.max(from), to);
    // One more than the page, to know whether another follows.
    let wanted = skip.saturating_add(limit).saturating_add(1);
    let first = store
        .pushdown()
        .map(|p| p.first_events(range, filter, wanted));
    let all = match first.transpose().map_err(|e| e.to_string())? {
        Some(first) => first,
        None => first_events_by_window(store, range, filter, wanted).map_err(|e| e.to_string())?,
    };
    let start = all.partition_point(|e| e.timestamp.0 < after_ts) + skip;
    let page: Vec<Event> = all.iter().skip(start).take(limit).cloned().collect();
    let end = start + page.len();
    let next_cursor = (end < all.len()).then(|| {
        let last = page.last().map_or(after_ts, |e| e.timestamp.0);
        let at_last = all[..end].iter().filter(|e| e.timestamp.0 == last).count();
        format!("{last}.{at_last}")
    });
    Ok(Page {
        events: page,
        next_cursor,
    })
}
