//! Columnar encoding of an event block: timestamps as zig-zag varint deltas; user, session,
//! feature, route, error and properties as per-block dictionaries with varint indexes; status as
//! varints; latencies as scaled integers when they have at most three decimals (else raw f64);
//! the whole then compressed with zstd. Much smaller than JSON, and decoded without a JSON
//! parser (each distinct properties object is parsed once per block). The collector stores these
//! blocks, and the agent ships its events in them (see [`crate::batch`]).

use std::borrow::Borrow;

use serde_json::{Map, Value};
use tda_schema::wire::{
    check_latency, check_properties, check_status, check_text, MAX_ERROR_LEN, MAX_FEATURE_LEN,
    MAX_ID_LEN, MAX_ROUTE_LEN,
};
use tda_schema::{Event, FieldError, Timestamp};

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

    /// A decoded column, as written.
    fn of(c: &'a Column) -> Self {
        Dict {
            words: c.words.iter().map(String::as_str).collect(),
            index: Default::default(),
            rows: c.rows.iter().map(|r| u64::from(*r)).collect(),
        }
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
    let props: Vec<Option<String>> = events
        .iter()
        .map(|e| {
            (!e.properties.is_empty())
                .then(|| serde_json::to_string(&e.properties).unwrap_or_default())
        })
        .collect();
    let mut cols: [Dict; 6] = std::array::from_fn(|_| Dict::new());
    for (e, p) in events.iter().zip(&props) {
        cols[0].push(Some(&e.user_id));
        cols[1].push(e.session_id.as_deref());
        cols[2].push(Some(&e.feature));
        cols[3].push(e.route.as_deref());
        cols[4].push(e.error.as_deref());
        cols[5].push(p.as_deref());
    }
    let timestamps: Vec<i64> = events.iter().map(|e| e.timestamp.0).collect();
    let statuses: Vec<Option<u16>> = events.iter().map(|e| e.status).collect();
    let latencies: Vec<Option<f64>> = events.iter().map(|e| e.latency_ms).collect();
    pack(&timestamps, &cols, &statuses, &latencies)
}

/// The block of these columns: timestamps, the six dictionary columns, statuses, latencies.
fn pack(
    timestamps: &[i64],
    cols: &[Dict; 6],
    statuses: &[Option<u16>],
    latencies: &[Option<f64>],
) -> Vec<u8> {
    let mut raw = Vec::with_capacity(timestamps.len() * 16);
    put_varint(&mut raw, timestamps.len() as u64);
    let mut prev = 0i64;
    for t in timestamps {
        put_varint(&mut raw, zigzag(t - prev));
        prev = *t;
    }
    for c in cols {
        c.write(&mut raw);
    }
    for s in statuses {
        put_varint(&mut raw, s.map_or(0, |s| u64::from(s) + 1));
    }
    for l in latencies {
        put_latency(&mut raw, *l);
    }
    let mut out = vec![VERSION];
    out.extend(zstd::bulk::compress(&raw, ZSTD_LEVEL).unwrap_or_default());
    out
}

/// Decompresses a zstd frame, refusing to produce more than `limit` bytes.
pub fn decompress(packed: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    // A frame that names its size (ours do) is decompressed in one call into a buffer of that
    // size, at most `limit` (more than twice as fast as the stream for a large block).
    if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(packed) {
        if size > limit as u64 {
            return Err(format!("decompresses to more than {limit} bytes"));
        }
        return zstd::bulk::decompress(packed, size as usize)
            .map_err(|e| format!("corrupt zstd: {e}"));
    }
    let decoder = zstd::stream::read::Decoder::new(packed).map_err(|e| format!("not zstd: {e}"))?;
    let mut out = Vec::new();
    decoder
        .take((limit as u64).saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| format!("corrupt zstd: {e}"))?;
    if out.len() > limit {
        return Err(format!("decompresses to more than {limit} bytes"));
    }
    Ok(out)
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

/// A dictionary column: its words and, per row, an index into them (0 = absent, `w` = word
/// `w - 1`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Column {
    /// The distinct values.
    pub words: Vec<String>,
    /// Per row, 0 or one more than the index of its word.
    pub rows: Vec<u32>,
}

/// A dictionary column as read, its words borrowed from the decompressed block.
struct ColumnRef<'a> {
    words: Vec<&'a str>,
    rows: Vec<u32>,
}

impl<'a> ColumnRef<'a> {
    /// Reads a dictionary column of `rows` rows, every word.
    fn read(r: &mut Reader<'a>, rows: usize) -> Result<Self, String> {
        let n = r.count()?;
        let mut words = Vec::with_capacity(n);
        for _ in 0..n {
            words.push(r.str()?);
        }
        let rows = read_rows(r, n, rows)?;
        Ok(ColumnRef { words, rows })
    }

    /// Reads a dictionary column of `rows` rows, keeping only the words of rows `wanted`
    /// (the others are stepped over, not checked or collected: a short range of a large
    /// block reads a few of its many users).
    fn read_for(r: &mut Reader<'a>, rows: usize, wanted: &[usize]) -> Result<Self, String> {
        let n = r.count()?;
        let section = r.rest();
        for _ in 0..n {
            let len = r.count()?;
            r.bytes(len)?;
        }
        let section = &section[..section.len() - r.rest().len()];
        let rows = read_rows(r, n, rows)?;
        let mut needed = vec![false; n + 1];
        wanted.iter().for_each(|&i| needed[rows[i] as usize] = true);
        let mut words = vec![""; n];
        let mut walk = Reader::new(section);
        for (w, word) in words.iter_mut().enumerate() {
            if needed[w + 1] {
                *word = walk.str()?;
            } else {
                let len = walk.count()?;
                walk.bytes(len)?;
            }
        }
        Ok(ColumnRef { words, rows })
    }

    /// Row `i`'s value, owned.
    fn owned(&self, i: usize) -> Option<String> {
        match self.rows[i] {
            0 => None,
            w => Some(self.words[w as usize - 1].to_string()),
        }
    }
}

/// A dictionary column's row indexes (0 = absent), each checked against its `n` words.
fn read_rows(r: &mut Reader, n: usize, rows: usize) -> Result<Vec<u32>, String> {
    (0..rows)
        .map(|_| match r.varint()? {
            i if i <= n as u64 => Ok(i as u32),
            _ => Err("dictionary index out of range".to_string()),
        })
        .collect()
}

impl Column {
    /// Reads a dictionary column of `rows` rows.
    fn read(r: &mut Reader, rows: usize) -> Result<Self, String> {
        let c = ColumnRef::read(r, rows)?;
        let words = c.words.iter().map(|w| w.to_string()).collect();
        Ok(Column {
            words,
            rows: c.rows,
        })
    }

    /// Row `i`'s value.
    pub fn get(&self, i: usize) -> Option<&str> {
        match self.rows[i] {
            0 => None,
            w => Some(self.words[w as usize - 1].as_str()),
        }
    }

    /// The column of `rows` only, its dictionary holding only their words.
    fn select(&self, rows: &[usize]) -> Column {
        let mut renumbered = vec![0u32; self.words.len() + 1];
        let mut out = Column::default();
        for &i in rows {
            let old = self.rows[i] as usize;
            if old != 0 && renumbered[old] == 0 {
                out.words.push(self.words[old - 1].clone());
                renumbered[old] = out.words.len() as u32;
            }
            out.rows.push(renumbered[old]);
        }
        out
    }

    /// Checks every word with `check` (and, when `required`, that no row is absent); an error
    /// names the first row that holds the offending value.
    fn validate(
        &self,
        required: Option<&'static str>,
        check: impl Fn(&str) -> Result<(), (&'static str, String)>,
    ) -> Result<(), FieldError> {
        if let (Some(field), Some(row)) = (required, self.rows.iter().position(|r| *r == 0)) {
            return Err(FieldError::at(format!("events[{row}].{field}"), "missing"));
        }
        for (w, word) in self.words.iter().enumerate() {
            if let Err((field, message)) = check(word) {
                let row = self.rows.iter().position(|r| *r as usize == w + 1);
                let location = match row {
                    Some(row) => format!("events[{row}].{field}"),
                    None => format!("events.{field}"),
                };
                return Err(FieldError::at(location, message));
            }
        }
        Ok(())
    }
}

/// A decoded event block: every column, row for row (nothing built per event).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventColumns {
    /// Epoch ms per row.
    pub timestamps: Vec<i64>,
    /// `user_id` (every row has one).
    pub users: Column,
    /// `session_id`.
    pub sessions: Column,
    /// `feature` (every row has one).
    pub features: Column,
    /// `route`.
    pub routes: Column,
    /// `error`.
    pub errors: Column,
    /// `properties`, each distinct object as its JSON text (absent when empty).
    pub properties: Column,
    /// `status` per row.
    pub statuses: Vec<Option<u16>>,
    /// `latency_ms` per row.
    pub latencies: Vec<Option<f64>>,
}

impl EventColumns {
    /// Reads a block written by [`encode`] (version byte included), one the reader wrote.
    pub fn read(block: &[u8]) -> Result<Self, String> {
        Self::read_bounded(block, usize::MAX)
    }

    /// Reads a block from outside (version byte included), refusing one that would decompress
    /// to more than `limit` bytes.
    pub fn read_bounded(block: &[u8], limit: usize) -> Result<Self, String> {
        if block.first() != Some(&VERSION) {
            return Err("not a columnar event block".into());
        }
        let data = decompress(&block[1..], limit)?;
        let mut r = Reader::new(&data);
        let timestamps = read_timestamps(&mut r)?;
        let n = timestamps.len();
        let mut cols = (0..6)
            .map(|_| Column::read(&mut r, n))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter();
        let mut next = || cols.next().unwrap_or_default();
        let (users, sessions, features) = (next(), next(), next());
        let (routes, errors, properties) = (next(), next(), next());
        let (statuses, latencies) = read_statuses_and_latencies(&mut r, n)?;
        Ok(EventColumns {
            timestamps,
            users,
            sessions,
            features,
            routes,
            errors,
            properties,
            statuses,
            latencies,
        })
    }

    /// The block of these columns (what [`encode`] gives for their events).
    pub fn encode(&self) -> Vec<u8> {
        let cols = [
            &self.users,
            &self.sessions,
            &self.features,
            &self.routes,
            &self.errors,
            &self.properties,
        ]
        .map(Dict::of);
        pack(&self.timestamps, &cols, &self.statuses, &self.latencies)
    }

    /// The columns of `rows` only, in that order.
    pub fn select(&self, rows: &[usize]) -> EventColumns {
        EventColumns {
            timestamps: rows.iter().map(|&i| self.timestamps[i]).collect(),
            users: self.users.select(rows),
            sessions: self.sessions.select(rows),
            features: self.features.select(rows),
            routes: self.routes.select(rows),
            errors: self.errors.select(rows),
            properties: self.properties.select(rows),
            statuses: rows.iter().map(|&i| self.statuses[i]).collect(),
            latencies: rows.iter().map(|&i| self.latencies[i]).collect(),
        }
    }

    /// The rows of each period of `period_ms` (an hour: the store's blocks), by period start.
    pub fn rows_by_period(&self, period_ms: i64) -> std::collections::BTreeMap<i64, Vec<usize>> {
        let mut periods: std::collections::BTreeMap<i64, Vec<usize>> = Default::default();
        for (i, t) in self.timestamps.iter().enumerate() {
            let start = t.div_euclid(period_ms) * period_ms;
            periods.entry(start).or_default().push(i);
        }
        periods
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// Checks every field as [`Event::validate`] does (each distinct value once); the error
    /// names the first event that holds the offending value, as `events[i].field`.
    pub fn validate(&self) -> Result<(), FieldError> {
        let text = |field, max| move |w: &str| check_text(field, w, max);
        self.users
            .validate(Some("user_id"), text("user_id", MAX_ID_LEN))?;
        self.features
            .validate(Some("feature"), text("feature", MAX_FEATURE_LEN))?;
        self.sessions
            .validate(None, text("session_id", MAX_ID_LEN))?;
        self.routes.validate(None, text("route", MAX_ROUTE_LEN))?;
        self.errors.validate(None, text("error", MAX_ERROR_LEN))?;
        self.properties.validate(None, |w| {
            let map: Map<String, Value> = serde_json::from_str(w)
                .map_err(|e| ("properties", format!("not a JSON object: {e}")))?;
            check_properties(&map)
        })?;
        let at = |row: usize, (field, message): (&str, String)| {
            FieldError::at(format!("events[{row}].{field}"), message)
        };
        for (row, t) in self.timestamps.iter().enumerate() {
            Timestamp::from_ms(*t).map_err(|m| at(row, ("timestamp", m)))?;
        }
        for (row, s) in self.statuses.iter().enumerate() {
            s.map_or(Ok(()), check_status).map_err(|e| at(row, e))?;
        }
        for (row, l) in self.latencies.iter().enumerate() {
            l.map_or(Ok(()), check_latency).map_err(|e| at(row, e))?;
        }
        Ok(())
    }

    /// The properties column's objects, parsed once each: index 0 is the empty object (absent),
    /// index `w` the dictionary's word `w`.
    pub fn parsed_properties(&self) -> Result<Vec<Map<String, Value>>, String> {
        let mut out = vec![Map::new()];
        for text in &self.properties.words {
            out.push(serde_json::from_str(text).map_err(|e| e.to_string())?);
        }
        Ok(out)
    }

    /// Row `i` as an event, its properties from `props` (see [`Self::parsed_properties`]) or
    /// empty when `props` is `None`.
    pub fn event(&self, i: usize, props: Option<&[Map<String, Value>]>) -> Event {
        let owned = |c: &Column| c.get(i).map(str::to_string);
        Event {
            timestamp: Timestamp(self.timestamps[i]),
            user_id: owned(&self.users).unwrap_or_default(),
            session_id: owned(&self.sessions),
            feature: owned(&self.features).unwrap_or_default(),
            route: owned(&self.routes),
            status: self.statuses[i],
            latency_ms: self.latencies[i],
            error: owned(&self.errors),
            properties: props
                .and_then(|p| p.get(self.properties.rows[i] as usize).cloned())
                .unwrap_or_default(),
        }
    }

    /// The rows whose timestamp is `within` the range, as events.
    pub fn events(
        &self,
        properties: Properties,
        within: std::ops::Range<i64>,
    ) -> Result<Vec<Event>, String> {
        let props = match properties {
            Properties::Read => Some(self.parsed_properties()?),
            Properties::Skip => None,
        };
        Ok((0..self.len())
            .filter(|i| within.contains(&self.timestamps[*i]))
            .map(|i| self.event(i, props.as_deref()))
            .collect())
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

/// The timestamps column: a count, then zig-zag deltas.
fn read_timestamps(r: &mut Reader) -> Result<Vec<i64>, String> {
    let n = r.count()?;
    let mut timestamps = Vec::with_capacity(n);
    let mut prev = 0i64;
    for _ in 0..n {
        prev = prev.wrapping_add(unzigzag(r.varint()?));
        timestamps.push(prev);
    }
    Ok(timestamps)
}

/// The status and latency columns of `n` rows.
type StatusesAndLatencies = (Vec<Option<u16>>, Vec<Option<f64>>);

fn read_statuses_and_latencies(r: &mut Reader, n: usize) -> Result<StatusesAndLatencies, String> {
    let statuses = (0..n)
        .map(|_| match r.varint()? {
            0 => Ok(None),
            s => Ok(Some(
                u16::try_from(s - 1).map_err(|_| "status out of range")?,
            )),
        })
        .collect::<Result<_, String>>()?;
    let latencies = (0..n).map(|_| read_latency(r)).collect::<Result<_, _>>()?;
    Ok((statuses, latencies))
}

/// Decodes a block written by [`encode`] (version byte included): the events whose timestamp
/// is `within` the range. Only those are built, and a block with none is left after its
/// timestamps; dictionary words are borrowed until a wanted row takes one.
pub fn decode(
    block: &[u8],
    properties: Properties,
    within: std::ops::Range<i64>,
) -> Result<Vec<Event>, String> {
    if block.first() != Some(&VERSION) {
        return Err("not a columnar event block".into());
    }
    let data = decompress(&block[1..], usize::MAX)?;
    let mut r = Reader::new(&data);
    let timestamps = read_timestamps(&mut r)?;
    let n = timestamps.len();
    let wanted: Vec<usize> = (0..n)
        .filter(|i| within.contains(&timestamps[*i]))
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let cols = (0..6)
        .map(|_| ColumnRef::read_for(&mut r, n, &wanted))
        .collect::<Result<Vec<_>, _>>()?;
    let (statuses, latencies) = read_statuses_and_latencies(&mut r, n)?;
    // Each wanted distinct object parsed once (words no wanted row takes stay empty).
    let props = match properties {
        Properties::Read => Some(
            cols[5]
                .words
                .iter()
                .map(|w| match *w {
                    "" => Ok(Map::new()),
                    w => serde_json::from_str(w).map_err(|e| e.to_string()),
                })
                .collect::<Result<Vec<Map<String, Value>>, String>>()?,
        ),
        Properties::Skip => None,
    };
    Ok(wanted
        .into_iter()
        .map(|i| Event {
            timestamp: Timestamp(timestamps[i]),
            user_id: cols[0].owned(i).unwrap_or_default(),
            session_id: cols[1].owned(i),
            feature: cols[2].owned(i).unwrap_or_default(),
            route: cols[3].owned(i),
            status: statuses[i],
            latency_ms: latencies[i],
            error: cols[4].owned(i),
            properties: match (&props, cols[5].rows[i]) {
                (Some(p), w) if w > 0 => p[w as usize - 1].clone(),
                _ => Map::new(),
            },
        })
        .collect())
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
    fn columns_split_by_hour_encode_as_their_events_do() {
        let hour = 3_600_000i64;
        let events: Vec<Event> = (0..40)
            .map(|i| {
                let feature = ["a", "b"][i as usize % 2];
                ev(serde_json::json!({"timestamp": 1_795_860_000_000i64 + i * hour / 10,
                "user_id": format!("u{}", i % 3), "feature": feature,
                "status": 200 + (i % 2) * 300, "latency_ms": i as f64 / 4.0,
                "error": if i % 7 == 0 { Some("boom") } else { None },
                "properties": if i % 5 == 0 { serde_json::json!({"k": i}) } else { serde_json::json!({}) }}))
            })
            .collect();
        let cols = EventColumns::read(&encode(&events)).unwrap();
        assert_eq!(
            cols.encode(),
            encode(&events),
            "the whole block, re-encoded"
        );
        let periods = cols.rows_by_period(hour);
        assert_eq!(periods.len(), 4);
        for (start, rows) in periods {
            let want: Vec<&Event> = events
                .iter()
                .filter(|e| e.timestamp.0.div_euclid(hour) * hour == start)
                .collect();
            let part = cols.select(&rows);
            assert_eq!(part.encode(), encode(&want), "hour {start}");
            assert!(part.users.words.len() <= 3 && part.features.words.len() == 2);
        }
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
