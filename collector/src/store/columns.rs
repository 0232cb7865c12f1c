//! Columnar encoding of an event block: timestamps as zig-zag varint deltas; user, session,
//! feature, route, error and properties as per-block dictionaries with varint indexes; status as
//! varints; latencies as scaled integers when they have at most three decimals (else raw f64);
//! the whole then compressed with zstd. Much smaller than JSON, and decoded without a JSON
//! parser (each distinct properties object is parsed once per block).

use std::borrow::Borrow;

use serde_json::{Map, Value};
use tda_schema::{Event, Timestamp};

use super::facts::{Facts, Words};
use crate::codec::{put_f64, put_varint, unzigzag, zigzag, Reader};

/// Format version byte of a columnar event block.
pub const VERSION: u8 = 2;
const ZSTD_LEVEL: i32 = 3;

/// A column of optional strings: a dictionary, then one index per row (0 = absent).
struct Dict<'a> {
    words: Vec<&'a str>,
    index: std::collections::HashMap<&'a str, u64>,
    rows: Vec<u64>,
}

impl<'a> Dict<'a> {
    fn new() -> Self {
        Dict {
            words: Vec::new(),
            index: std::collections::HashMap::new(),
            rows: Vec::new(),
        }
    }

    fn push(&mut self, v: Option<&'a str>) {
        let i = v.map_or(0, |w| {
            let next = self.words.len() as u64 + 1;
            *self.index.entry(w).or_insert_with(|| {
                self.words.push(w);
                next
            })
        });
        self.rows.push(i);
    }

    fn write(&self, out: &mut Vec<u8>) {
        put_varint(out, self.words.len() as u64);
        for w in &self.words {
            put_varint(out, w.len() as u64);
            out.extend_from_slice(w.as_bytes());
        }
        for r in &self.rows {
            put_varint(out, *r);
        }
    }
}

/// Encodes events as a versioned, compressed columnar block.
pub fn encode<E: Borrow<Event>>(events: &[E]) -> Vec<u8> {
    let events: Vec<&Event> = events.iter().map(Borrow::borrow).collect();
    let events = events.as_slice();
    let props: Vec<Option<String>> = events
        .iter()
        .map(|e| {
            (!e.properties.is_empty())
                .then(|| serde_json::to_string(&e.properties).unwrap_or_default())
        })
        .collect();
    let mut cols: [Dict; 6] = [
        Dict::new(),
        Dict::new(),
        Dict::new(),
        Dict::new(),
        Dict::new(),
        Dict::new(),
    ];
    for (e, p) in events.iter().zip(&props) {
        cols[0].push(Some(&e.user_id));
        cols[1].push(e.session_id.as_deref());
        cols[2].push(Some(&e.feature));
        cols[3].push(e.route.as_deref());
        cols[4].push(e.error.as_deref());
        cols[5].push(p.as_deref());
    }
    let mut raw = Vec::with_capacity(events.len() * 16);
    put_varint(&mut raw, events.len() as u64);
    let mut prev = 0i64;
    for e in events {
        put_varint(&mut raw, zigzag(e.timestamp.0 - prev));
        prev = e.timestamp.0;
    }
    for c in &cols {
        c.write(&mut raw);
    }
    for e in events {
        put_varint(&mut raw, e.status.map_or(0, |s| u64::from(s) + 1));
    }
    for e in events {
        put_latency(&mut raw, e.latency_ms);
    }
    let mut out = vec![VERSION];
    out.extend(zstd::bulk::compress(&raw, ZSTD_LEVEL).unwrap_or_default());
    out
}

/// Latency: 0 absent, 1 + varint of ms x 1000 when exact, 2 + f64 bits otherwise.
fn put_latency(out: &mut Vec<u8>, l: Option<f64>) {
    match l {
        None => out.push(0),
        Some(v) => {
            let scaled = (v * 1000.0).round();
            if (0.0..9.0e15).contains(&scaled) && scaled / 1000.0 == v {
                out.push(1);
                put_varint(out, scaled as u64);
            } else {
                out.push(2);
                put_f64(out, v);
            }
        }
    }
}

/// A dictionary column: its words and, per row, an index into them (0 = absent).
struct Column {
    words: Vec<String>,
    rows: Vec<usize>,
}

impl Column {
    /// Reads a dictionary column of `rows` rows.
    fn read(r: &mut Reader, rows: usize) -> Result<Self, String> {
        let n = r.count()?;
        let mut words = Vec::with_capacity(n);
        for _ in 0..n {
            words.push(r.str()?.to_string());
        }
        let rows = (0..rows)
            .map(|_| match r.varint()? as usize {
                i if i <= n => Ok(i),
                _ => Err("dictionary index out of range".to_string()),
            })
            .collect::<Result<_, String>>()?;
        Ok(Column { words, rows })
    }

    /// Row `i`'s value.
    fn get(&self, i: usize) -> Option<String> {
        match self.rows[i] {
            0 => None,
            w => Some(self.words[w - 1].clone()),
        }
    }
}

/// Reads a latency written by [`put_latency`].
fn read_latency(r: &mut Reader) -> Result<Option<f64>, String> {
    match r.byte()? {
        0 => Ok(None),
        1 => Ok(Some(r.varint()? as f64 / 1000.0)),
        2 => Ok(Some(r.f64()?)),
        k => Err(format!("unknown latency kind {k}")),
    }
}

/// Whether decoding fills in each event's `properties` (parsing every distinct object once) or
/// leaves them empty, for readers that do not use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Properties {
    /// Parse and fill them in.
    Read,
    /// Leave them empty.
    Skip,
}

/// Decodes a block written by [`encode`] (version byte included): the events whose timestamp
/// is `within` the range (only those are built, so a scan of a short range stays cheap).
pub fn decode(
    block: &[u8],
    properties: Properties,
    within: std::ops::Range<i64>,
) -> Result<Vec<Event>, String> {
    if block.first() != Some(&VERSION) {
        return Err("not a columnar event block".into());
    }
    let data = zstd::decode_all(&block[1..]).map_err(|e| e.to_string())?;
    let mut r = Reader::new(&data);
    let n = r.count()?;
    let mut ts = Vec::with_capacity(n);
    let mut prev = 0i64;
    for _ in 0..n {
        prev = prev.wrapping_add(unzigzag(r.varint()?));
        ts.push(prev);
    }
    let cols: Vec<Column> = (0..6)
        .map(|_| Column::read(&mut r, n))
        .collect::<Result<_, _>>()?;
    let statuses: Vec<Option<u16>> = (0..n)
        .map(|_| match r.varint()? {
            0 => Ok(None),
            s => Ok(Some(
                u16::try_from(s - 1).map_err(|_| "status out of range")?,
            )),
        })
        .collect::<Result<_, String>>()?;
    let latencies: Vec<Option<f64>> = (0..n)
        .map(|_| read_latency(&mut r))
        .collect::<Result<_, _>>()?;
    let props = match properties {
        Properties::Read => parse_properties(&cols[5])?,
        Properties::Skip => vec![Map::new()],
    };
    let wanted = (0..n).filter(|i| within.contains(&ts[*i]));
    Ok(wanted
        .map(|i| Event {
            timestamp: Timestamp(ts[i]),
            user_id: cols[0].get(i).unwrap_or_default(),
            session_id: cols[1].get(i),
            feature: cols[2].get(i).unwrap_or_default(),
            route: cols[3].get(i),
            status: statuses[i],
            latency_ms: latencies[i],
            error: cols[4].get(i),
            properties: match properties {
                Properties::Read => props[cols[5].rows[i]].clone(),
                Properties::Skip => Map::new(),
            },
        })
        .collect())
}

/// Reads a dictionary column's words into `words` and returns its rows (0 = absent).
fn read_dict(r: &mut Reader, rows: usize, words: &mut Words) -> Result<Vec<u32>, String> {
    let n = r.count()?;
    for _ in 0..n {
        words.push(r.str()?);
    }
    let mut out = Vec::with_capacity(rows);
    for _ in 0..rows {
        let i = r.varint()?;
        if i > n as u64 {
            return Err("dictionary index out of range".into());
        }
        out.push(i as u32);
    }
    Ok(out)
}

/// Skips a dictionary column of `rows` rows.
fn skip_dict(r: &mut Reader, rows: usize) -> Result<(), String> {
    let n = r.count()?;
    for _ in 0..n {
        let len = r.varint()? as usize;
        r.bytes(len)?;
    }
    r.skip_varints(rows)
}

/// Reads a dictionary column's rows as whether each is present (its words skipped).
fn read_presence(r: &mut Reader, rows: usize) -> Result<Vec<bool>, String> {
    let n = r.count()?;
    for _ in 0..n {
        let len = r.varint()? as usize;
        r.bytes(len)?;
    }
    let mut out = Vec::with_capacity(rows);
    for _ in 0..rows {
        let i = r.varint()?;
        if i > n as u64 {
            return Err("dictionary index out of range".into());
        }
        out.push(i != 0);
    }
    Ok(out)
}

/// Decodes the facts of a block written by [`encode`] (version byte included) whose timestamp
/// is `within` the range: no event structs, no latencies, properties only when asked for.
pub fn decode_facts(
    block: &[u8],
    properties: Properties,
    within: std::ops::Range<i64>,
) -> Result<Facts, String> {
    if block.first() != Some(&VERSION) {
        return Err("not a columnar event block".into());
    }
    let data = zstd::decode_all(&block[1..]).map_err(|e| e.to_string())?;
    let mut r = Reader::new(&data);
    let n = r.count()?;
    let mut f = Facts::default();
    f.timestamps.reserve_exact(n);
    let mut prev = 0i64;
    for _ in 0..n {
        prev = prev.wrapping_add(unzigzag(r.varint()?));
        f.timestamps.push(prev);
    }
    let present = |rows: Vec<u32>, what: &str| -> Result<Vec<u32>, String> {
        rows.into_iter()
            .map(|i| {
                i.checked_sub(1)
                    .ok_or_else(|| format!("event without {what}"))
            })
            .collect()
    };
    f.user_rows = present(read_dict(&mut r, n, &mut f.users)?, "user")?;
    skip_dict(&mut r, n)?; // sessions
    f.feature_rows = present(read_dict(&mut r, n, &mut f.features)?, "feature")?;
    skip_dict(&mut r, n)?; // routes
    let errors = read_presence(&mut r, n)?;
    match properties {
        Properties::Read => f.property_rows = read_dict(&mut r, n, &mut f.properties)?,
        Properties::Skip => skip_dict(&mut r, n)?,
    }
    f.statuses.reserve_exact(n);
    f.errors.reserve_exact(n);
    for failed in errors {
        let status = match r.varint()? {
            0 => 0,
            s => u16::try_from(s - 1).map_err(|_| "status out of range")?,
        };
        f.statuses.push(status);
        f.errors.push(failed || status >= 500);
    }
    if f.timestamps.iter().any(|t| !within.contains(t)) {
        let ts = f.timestamps.clone();
        f.retain(|i| within.contains(&ts[i]));
    }
    Ok(f)
}

/// The properties column's objects, parsed once each: index 0 is the empty object (absent),
/// index `w` the dictionary's word `w`.
fn parse_properties(col: &Column) -> Result<Vec<Map<String, Value>>, String> {
    let mut out = vec![Map::new()];
    for text in &col.words {
        out.push(serde_json::from_str(text).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: std::ops::Range<i64> = i64::MIN..i64::MAX;

    fn ev(v: serde_json::Value) -> Event {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn round_trips_every_field_and_absence() {
        let events = vec![
            ev(
                serde_json::json!({"timestamp": 1_795_860_000_500i64, "user_id": "u1", "session_id": "s1", "feature": "generate",
                "route": "/g", "status": 200, "latency_ms": 12.345, "properties": {"plan": "pro", "n": 3}}),
            ),
            ev(
                serde_json::json!({"timestamp": 1_795_860_000_100i64, "user_id": "u2", "feature": "export", "status": 503,
                "latency_ms": 0.1 + 0.2, "error": "timeout"}),
            ),
            ev(
                serde_json::json!({"timestamp": 1_795_860_000_100i64, "user_id": "u1", "feature": "generate"}),
            ),
            ev(
                serde_json::json!({"timestamp": 1_795_860_009_999i64, "user_id": "ü-名", "feature": "generate", "latency_ms": 0.0,
                "properties": {"plan": "pro", "n": 3}}),
            ),
        ];
        assert_eq!(
            decode(&encode(&events), Properties::Read, ALL).unwrap(),
            events
        );
        assert_eq!(
            decode(&encode::<Event>(&[]), Properties::Read, ALL).unwrap(),
            vec![]
        );
    }

    #[test]
    fn float_properties_come_back_to_the_last_bit() {
        // Found by the property tests: serde_json without `float_roundtrip` read this back
        // as 123268706945.19925.
        let events = vec![ev(
            serde_json::json!({"timestamp": 1_000_000_000_000i64, "user_id": "u1", "feature": "f",
            "properties": {"a": 123_268_706_945.199_23, "b": -907_119_366_745.374}}),
        )];
        assert_eq!(
            decode(&encode(&events), Properties::Read, ALL).unwrap(),
            events
        );
    }

    #[test]
    fn facts_equal_what_the_events_say() {
        let events: Vec<Event> = (0..50)
            .map(|i| {
                let feature = ["a", "b", "c"][i as usize % 3];
                ev(serde_json::json!({"timestamp": 1_795_860_000_000i64 + i * 1000,
                    "user_id": format!("u{}", i % 7), "feature": feature,
                    "status": if i % 10 == 0 { 503 } else { 200 },
                    "error": if i % 13 == 0 { Some("boom") } else { None },
                    "properties": if i % 2 == 0 { serde_json::json!({"plan": "pro"}) } else { serde_json::json!({}) }}))
            })
            .collect();
        let within = 1_795_860_005_000..1_795_860_040_000;
        let f = decode_facts(&encode(&events), Properties::Read, within.clone()).unwrap();
        let mut want = crate::store::facts::FactsBuilder::new(true);
        events
            .iter()
            .filter(|e| within.contains(&e.timestamp.0))
            .for_each(|e| want.push(e));
        let want = want.take();
        assert_eq!(f.len(), 35);
        assert_eq!(f.timestamps, want.timestamps);
        assert_eq!(f.statuses, want.statuses);
        assert_eq!(f.errors, want.errors);
        let names = |w: &Words, rows: &[u32]| -> Vec<String> {
            rows.iter()
                .map(|i| w.get(*i as usize).to_string())
                .collect()
        };
        assert_eq!(
            names(&f.users, &f.user_rows),
            names(&want.users, &want.user_rows)
        );
        assert_eq!(
            names(&f.features, &f.feature_rows),
            names(&want.features, &want.feature_rows)
        );
        let props = |w: &Words, rows: &[u32]| -> Vec<String> {
            rows.iter()
                .map(|i| match i {
                    0 => String::new(),
                    i => w.get(*i as usize - 1).to_string(),
                })
                .collect()
        };
        assert_eq!(
            props(&f.properties, &f.property_rows),
            props(&want.properties, &want.property_rows)
        );
        let skipped = decode_facts(&encode(&events), Properties::Skip, ALL).unwrap();
        assert!(skipped.property_rows.is_empty() && skipped.properties.is_empty());
        assert!(decode_facts(&[9, 1], Properties::Skip, ALL).is_err());
    }

    #[test]
    fn refuses_damage_without_panicking() {
        let block = encode(&[ev(
            serde_json::json!({"timestamp": 1_795_860_000_000i64, "user_id": "u", "feature": "f"}),
        )]);
        assert!(decode(&block[..block.len() - 3], Properties::Read, ALL).is_err());
        assert!(decode(&[9, 1, 2], Properties::Read, ALL).is_err());
        let mut raw = vec![VERSION];
        raw.extend(zstd::bulk::compress(&[5, 0], 3).unwrap());
        assert!(
            decode(&raw, Properties::Read, ALL).is_err(),
            "five events announced, none there"
        );
    }

    #[test]
    fn much_smaller_than_json() {
        let events: Vec<Event> = (0..10_000)
            .map(|i| {
                let (feature, plan) = (["a", "b", "c"][i as usize % 3], ["free", "pro"][i as usize % 2]);
                ev(serde_json::json!({"timestamp": 1_795_860_000_000i64 + i * 37, "user_id": format!("u{}", i % 500),
                    "feature": feature, "status": 200, "latency_ms": (i % 977) as f64 / 100.0, "properties": {"plan": plan}}))
            })
            .collect();
        let json = zstd::bulk::compress(&serde_json::to_vec(&events).unwrap(), 3).unwrap();
        let cols = encode(&events);
        assert!(
            cols.len() * 2 < json.len(),
            "columns {} vs json {}",
            cols.len(),
            json.len()
        );
    }
}
