//! Rollups built at ingest, one per stored event block: per minute and feature the request,
//! error and latency counts, sums and extremes; per hour and feature a latency sketch and a
//! distinct-user sketch; per hour the error kinds. Whole-hour statistics merge these instead of
//! decoding events.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use tda_schema::Event;

use super::columns::EventColumns;
use crate::sketch::distinct::{self, Distinct};
use crate::sketch::quantile::Sketch;
use tda_blocks::codec::{put_f64, put_signed, put_str, put_varint, Reader};

/// Format version byte of a rollup record.
pub const VERSION: u8 = 1;
pub use tda_schema::timestamp::{HOUR_MS, MINUTE_MS};
const ZSTD_LEVEL: i32 = 3;

/// Count, sum and extremes of latencies.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    /// Values added.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// Smallest (meaningless when `count` is 0).
    pub min: f64,
    /// Largest (meaningless when `count` is 0).
    pub max: f64,
}

impl Moments {
    /// Adds one value.
    pub fn add(&mut self, v: f64) {
        self.merge(&Moments {
            count: 1,
            sum: v,
            min: v,
            max: v,
        });
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Moments) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }
}

/// One minute of one feature.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cell {
    /// Requests (events).
    pub requests: u64,
    /// Failed requests ([`Event::is_error`], which is when [`Event::error_kind`] is some).
    pub errors: u64,
    /// Reported latencies, ms.
    pub latency: Moments,
}

/// One hour of one feature.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureHour {
    /// Cells by minute of the hour (0-59).
    pub minutes: BTreeMap<u8, Cell>,
    /// Latencies, ms.
    pub latency: Sketch,
    /// Users.
    pub users: Distinct,
}

impl FeatureHour {
    /// Adds everything in `other` (of the same feature and hour).
    pub fn merge(&mut self, other: &FeatureHour) {
        for (m, c) in &other.minutes {
            let cell = self.minutes.entry(*m).or_default();
            cell.requests += c.requests;
            cell.errors += c.errors;
            cell.latency.merge(&c.latency);
        }
        self.latency.merge(&other.latency);
        self.users.merge(&other.users);
    }
}

/// The rollup of some events of one hour.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rollup {
    /// Start of the hour, epoch ms.
    pub hour: i64,
    /// Events rolled up.
    pub events: u64,
    /// Per feature.
    pub features: BTreeMap<String, FeatureHour>,
    /// Failed requests by [`Event::error_kind`].
    pub error_kinds: BTreeMap<String, u64>,
}

impl Rollup {
    /// An empty rollup of the hour starting at `hour` (epoch ms).
    pub fn new(hour: i64) -> Self {
        Rollup {
            hour,
            ..Rollup::default()
        }
    }

    /// The rollup of `events`, which must all fall in one hour.
    pub fn of<E: Borrow<Event>>(events: &[E]) -> Self {
        let hour = events
            .first()
            .map_or(0, |e| e.borrow().timestamp.0.div_euclid(HOUR_MS) * HOUR_MS);
        let mut r = Rollup::new(hour);
        events.iter().for_each(|e| r.add(e.borrow()));
        r
    }

    /// The rollup of a decoded block whose rows all fall in one hour: the same as
    /// [`Rollup::of`] its events, without building them (each user hashed once).
    pub fn of_columns(c: &EventColumns) -> Self {
        let hour = c
            .timestamps
            .first()
            .map_or(0, |t| t.div_euclid(HOUR_MS) * HOUR_MS);
        let mut r = Rollup::new(hour);
        let users: Vec<u64> = c.users.words.iter().map(|u| distinct::hash(u)).collect();
        let mut features = vec![FeatureHour::default(); c.features.words.len()];
        for i in 0..c.len() {
            let Some(f) = (c.features.rows[i] as usize)
                .checked_sub(1)
                .and_then(|w| features.get_mut(w))
            else {
                continue;
            };
            r.events += 1;
            let minute = (c.timestamps[i] - hour).div_euclid(MINUTE_MS).clamp(0, 59) as u8;
            let cell = f.minutes.entry(minute).or_default();
            cell.requests += 1;
            let kind = match (c.errors.get(i), c.statuses[i]) {
                (Some(e), _) => Some(e.to_string()),
                (None, Some(s)) if s >= 500 => Some(format!("http_{s}")),
                _ => None,
            };
            if let Some(kind) = kind {
                cell.errors += 1;
                *r.error_kinds.entry(kind).or_default() += 1;
            }
            if let Some(l) = c.latencies[i] {
                cell.latency.add(l);
                f.latency.add(l);
            }
            if let Some(h) = (c.users.rows[i] as usize).checked_sub(1).map(|u| users[u]) {
                f.users.add_hash(h);
            }
        }
        let named = c.features.words.iter().zip(features);
        for (name, f) in named.filter(|(_, f)| !f.minutes.is_empty()) {
            match r.features.get_mut(name) {
                Some(mine) => mine.merge(&f), // a block naming one feature twice
                None => drop(r.features.insert(name.clone(), f)),
            }
        }
        r
    }

    /// The part of this rollup in the whole minutes of `[from, to)`: its minute cells there,
    /// without the hour's sketches and error kinds (they cannot be cut), for folds that read
    /// only the cells.
    pub fn minutes_within(&self, from: i64, to: i64) -> Rollup {
        let inside = |m: &u8| {
            let start = self.hour + i64::from(*m) * MINUTE_MS;
            from <= start && start + MINUTE_MS <= to
        };
        let mut out = Rollup::new(self.hour);
        for (name, f) in &self.features {
            let minutes: BTreeMap<u8, Cell> = f
                .minutes
                .iter()
                .filter(|(m, _)| inside(m))
                .map(|(m, c)| (*m, *c))
                .collect();
            if !minutes.is_empty() {
                out.events += minutes.values().map(|c| c.requests).sum::<u64>();
                let hour = FeatureHour {
                    minutes,
                    ..FeatureHour::default()
                };
                out.features.insert(name.clone(), hour);
            }
        }
        out
    }

    /// Adds one event of this hour.
    pub fn add(&mut self, e: &Event) {
        self.events += 1;
        let f = self.features.entry(e.feature.clone()).or_default();
        let minute = (e.timestamp.0 - self.hour)
            .div_euclid(MINUTE_MS)
            .clamp(0, 59) as u8;
        let cell = f.minutes.entry(minute).or_default();
        cell.requests += 1;
        if let Some(kind) = e.error_kind() {
            cell.errors += 1;
            *self.error_kinds.entry(kind).or_default() += 1;
        }
        if let Some(l) = e.latency_ms {
            cell.latency.add(l);
            f.latency.add(l);
        }
        f.users.add(&e.user_id);
    }

    /// Adds everything in `other` (of the same hour).
    pub fn merge(&mut self, other: &Rollup) {
        self.events += other.events;
        for (name, theirs) in &other.features {
            self.features.entry(name.clone()).or_default().merge(theirs);
        }
        for (kind, n) in &other.error_kinds {
            *self.error_kinds.entry(kind.clone()).or_default() += n;
        }
    }

    /// The versioned, compressed record.
    pub fn encode(&self) -> Vec<u8> {
        let mut raw = Vec::new();
        put_signed(&mut raw, self.hour);
        put_varint(&mut raw, self.events);
        put_varint(&mut raw, self.features.len() as u64);
        for (name, f) in &self.features {
            put_str(&mut raw, name);
            put_varint(&mut raw, f.minutes.len() as u64);
            for (m, c) in &f.minutes {
                raw.push(*m);
                put_varint(&mut raw, c.requests);
                put_varint(&mut raw, c.errors);
                put_varint(&mut raw, c.latency.count);
                if c.latency.count > 0 {
                    put_f64(&mut raw, c.latency.sum);
                    put_f64(&mut raw, c.latency.min);
                    put_f64(&mut raw, c.latency.max);
                }
            }
            f.latency.encode(&mut raw);
            f.users.encode(&mut raw);
        }
        put_varint(&mut raw, self.error_kinds.len() as u64);
        for (kind, n) in &self.error_kinds {
            put_str(&mut raw, kind);
            put_varint(&mut raw, *n);
        }
        let mut out = vec![VERSION];
        out.extend(zstd::bulk::compress(&raw, ZSTD_LEVEL).unwrap_or_default());
        out
    }

    /// Reads a record written by [`Rollup::encode`].
    pub fn decode(record: &[u8]) -> Result<Self, String> {
        match record.first() {
            Some(&VERSION) => {}
            Some(v) => {
                return Err(format!(
                    "rollup format version {v}, this build reads {VERSION}"
                ))
            }
            None => return Err("empty rollup record".into()),
        }
        let raw = zstd::decode_all(&record[1..]).map_err(|e| e.to_string())?;
        let mut r = Reader::new(&raw);
        let mut rollup = Rollup::new(r.signed()?);
        rollup.events = r.varint()?;
        for _ in 0..r.count()? {
            let name = r.str()?.to_string();
            let mut f = FeatureHour::default();
            for _ in 0..r.count()? {
                let (m, requests, errors, count) =
                    (r.byte()?, r.varint()?, r.varint()?, r.varint()?);
                let latency = if count > 0 {
                    let (sum, min, max) = (r.f64()?, r.f64()?, r.f64()?);
                    Moments {
                        count,
                        sum,
                        min,
                        max,
                    }
                } else {
                    Moments::default()
                };
                f.minutes.insert(
                    m,
                    Cell {
                        requests,
                        errors,
                        latency,
                    },
                );
            }
            f.latency = Sketch::decode(&mut r)?;
            f.users = Distinct::decode(&mut r)?;
            rollup.features.insert(name, f);
        }
        for _ in 0..r.count()? {
            let kind = r.str()?.to_string();
            rollup.error_kinds.insert(kind, r.varint()?);
        }
        if !r.is_done() {
            return Err("trailing bytes after rollup".into());
        }
        Ok(rollup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_860_000_000; // 10:00 UTC

    fn ev(offset_s: i64, user: &str, feature: &str, status: u16, latency: f64) -> Event {
        serde_json::from_value(serde_json::json!({
            "timestamp": T0 + offset_s * 1000, "user_id": user, "feature": feature,
            "status": status, "latency_ms": latency
        }))
        .unwrap()
    }

    #[test]
    fn a_blocks_columns_roll_up_as_its_events_do() {
        let mut events = vec![
            ev(1, "a", "generate", 200, 10.0),
            ev(2, "a", "generate", 503, 30.0),
            ev(61, "b", "generate", 200, 20.0),
            ev(3599, "c", "export", 404, 5.5),
        ];
        events[3].error = Some("not_found".into());
        events[0].latency_ms = None;
        let block = super::super::columns::encode(&events);
        let cols = EventColumns::read(&block).unwrap();
        assert_eq!(Rollup::of_columns(&cols), Rollup::of(&events));
        assert_eq!(Rollup::of_columns(&cols).error_kinds.len(), 2);
    }

    #[test]
    fn minutes_within_keep_only_whole_minutes_inside() {
        let events = [
            ev(1, "a", "generate", 200, 10.0),
            ev(61, "b", "generate", 503, 30.0),
            ev(125, "c", "export", 200, 5.5),
        ];
        let r = Rollup::of(&events);
        // From 30 s into minute 0 to 10 s into minute 2: only minute 1 is whole and inside.
        let cut = r.minutes_within(T0 + 30_000, T0 + 130_000);
        assert_eq!(cut.events, 1);
        assert_eq!(cut.features.len(), 1);
        let g = &cut.features["generate"];
        assert_eq!(g.minutes.keys().collect::<Vec<_>>(), vec![&1]);
        assert_eq!((g.minutes[&1].requests, g.minutes[&1].errors), (1, 1));
        assert_eq!(g.users.count(), 0, "no hour sketch in a cut");
        assert_eq!(r.minutes_within(T0, T0 + HOUR_MS).events, 3);
    }

    #[test]
    fn rolls_up_by_minute_and_feature_and_round_trips() {
        let events = [
            ev(1, "a", "generate", 200, 10.0),
            ev(2, "a", "generate", 503, 30.0),
            ev(61, "b", "generate", 200, 20.0),
            ev(3599, "c", "export", 200, 5.5),
        ];
        let r = Rollup::of(&events);
        assert_eq!((r.hour, r.events), (T0, 4));
        let g = &r.features["generate"];
        assert_eq!(
            g.minutes[&0],
            Cell {
                requests: 2,
                errors: 1,
                latency: Moments {
                    count: 2,
                    sum: 40.0,
                    min: 10.0,
                    max: 30.0
                }
            }
        );
        assert_eq!(g.minutes[&1].requests, 1);
        assert_eq!((g.users.count(), g.latency.count()), (2, 3));
        assert_eq!(r.features["export"].minutes[&59].latency.max, 5.5);
        assert_eq!(r.error_kinds, BTreeMap::from([("http_503".to_string(), 1)]));
        assert_eq!(Rollup::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn merging_two_halves_equals_the_whole() {
        let events: Vec<Event> = (0..400)
            .map(|i| {
                ev(
                    i * 9,
                    &format!("u{}", i % 37),
                    ["a", "b", "c"][i as usize % 3],
                    200,
                    i as f64,
                )
            })
            .collect();
        let mut left = Rollup::of(&events[..150]);
        left.merge(&Rollup::of(&events[150..]));
        assert_eq!(left, Rollup::of(&events));
    }

    #[test]
    fn damaged_records_are_errors() {
        let bytes = Rollup::of(&[ev(1, "a", "f", 200, 1.0)]).encode();
        assert!(Rollup::decode(&bytes[..bytes.len() - 2]).is_err());
        assert!(Rollup::decode(&[7, 0]).unwrap_err().contains("version 7"));
        assert!(Rollup::decode(&[]).is_err());
    }
}
