//! Event blocks for the store: the columnar format itself is `tda_blocks::events` (shared with
//! the agent, which ships its events in it); here, decoding a block straight to facts.

pub use tda_blocks::events::{decode, encode, EventColumns, Properties, VERSION};

use super::facts::{Facts, Words};
use tda_blocks::codec::{unzigzag, Reader};

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

#[cfg(test)]
mod tests {
    use super::*;
    use tda_schema::Event;

    const ALL: std::ops::Range<i64> = i64::MIN..i64::MAX;

    fn ev(v: serde_json::Value) -> Event {
        serde_json::from_value(v).unwrap()
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
}
