//! `tda-collector migrate`: copies an embedded (sled) store into ClickHouse an hour at a time, as
//! batches whose ids name the hour and the part, so a run that was stopped resumes where it
//! left off (ClickHouse recognises the batches already copied), then checks that every day
//! holds as many events and samples on both sides.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tda_schema::wire::BATCH_FORMAT_VERSION;
use tda_schema::{Batch, Event, HostSample, Timestamp};

use crate::store::aggregate::{EventQuery, Group};
use crate::store::Filter;
use crate::store::{Appended, ClickHouseConfig, ClickHouseStore, SledStore, Storage, StoreError};
use tda_schema::timestamp::{DAY_MS, HOUR_MS};

/// Events (or samples) per copied batch: one INSERT each.
const PART: usize = 20_000;
/// The agent id the copied events carry (the embedded store does not keep events' agents).
pub const MIGRATED_AGENT: &str = "sled-migration";

/// Why a migration could not be done.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// `--from` or `--to` is not understood.
    #[error("{0}")]
    Usage(String),
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The counts differ after copying.
    #[error("verification failed: {0}")]
    Mismatch(String),
}

/// What a migration did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Migrated {
    /// Hours copied.
    pub hours: u64,
    /// Events and samples sent in this run.
    pub events: u64,
    /// Samples sent in this run.
    pub samples: u64,
    /// Batches ClickHouse already held (copied by an earlier run).
    pub already_copied: u64,
    /// Days whose counts were checked equal.
    pub days_verified: u64,
}

/// `sled:PATH`: the collector's `data_dir` or its `analytics` directory.
pub fn parse_from(text: &str) -> Result<PathBuf, MigrateError> {
    let path = text
        .strip_prefix("sled:")
        .ok_or_else(|| MigrateError::Usage(format!("--from `{text}`: expected sled:PATH")))?;
    let path = PathBuf::from(path);
    let analytics = path.join("analytics");
    let dir = if analytics.is_dir() { analytics } else { path };
    if !dir.join("data").join("events").is_dir() {
        return Err(MigrateError::Usage(format!(
            "--from: no embedded store under {} (expected data/events inside)",
            dir.display()
        )));
    }
    Ok(dir)
}

/// `clickhouse:URL/DATABASE`, for example `clickhouse:http://127.0.0.1:8123/tda`; the password,
/// if any, from `password`.
pub fn parse_to(text: &str, password: Option<String>) -> Result<ClickHouseConfig, MigrateError> {
    let usage = || MigrateError::Usage(format!("--to `{text}`: expected clickhouse:URL/DATABASE"));
    let rest = text.strip_prefix("clickhouse:").ok_or_else(usage)?;
    let scheme_end = rest.find("://").ok_or_else(usage)? + 3;
    let (url, database) = match rest[scheme_end..].split_once('/') {
        Some((host, db)) if !db.is_empty() => (format!("{}{host}", &rest[..scheme_end]), db),
        _ => (rest.trim_end_matches('/').to_string(), "tda"),
    };
    let valid = database
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(MigrateError::Usage(format!(
            "--to: database `{database}` may hold only letters, digits and _"
        )));
    }
    Ok(ClickHouseConfig {
        url,
        database: database.to_string(),
        user: None,
        password,
        timeout: Duration::from_secs(300),
    })
}

/// Copies every hour of `from` into `to`, then verifies; `progress` draws a bar on stderr.
pub fn run(from: &Path, to: ClickHouseConfig, progress: bool) -> Result<Migrated, MigrateError> {
    let source = SledStore::open(from)?;
    let target = ClickHouseStore::open(to)?;
    let hours = source.hours()?;
    let bar = if progress {
        indicatif::ProgressBar::new(hours.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} hours  {msg}  eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut done = Migrated::default();
    for &hour in &hours {
        copy_hour(&source, &target, hour, &mut done)?;
        done.hours += 1;
        bar.set_message(format!(
            "{} events, {} samples sent, {} batches already there",
            done.events, done.samples, done.already_copied
        ));
        bar.inc(1);
    }
    bar.finish();
    done.days_verified = verify(&source, &target, &hours)?;
    Ok(done)
}

fn batch(id: String, agent: &str, events: Vec<Event>, samples: Vec<HostSample>) -> Batch {
    Batch {
        version: BATCH_FORMAT_VERSION,
        agent_id: agent.to_string(),
        batch_id: id,
        created_at: Timestamp::now(),
        events,
        samples,
    }
}

/// Sends one hour's events and samples, in parts whose ids are the same on every run.
fn copy_hour(
    source: &SledStore,
    target: &ClickHouseStore,
    hour: i64,
    done: &mut Migrated,
) -> Result<(), StoreError> {
    let mut events = Vec::new();
    source.scan_events(hour, hour + HOUR_MS, &mut |e| events.push(e.clone()))?;
    events.sort_by(|a, b| (a.timestamp, &a.user_id).cmp(&(b.timestamp, &b.user_id)));
    let mut samples: BTreeMap<String, Vec<HostSample>> = BTreeMap::new();
    source.scan_samples(hour, hour + HOUR_MS, None, &mut |agent, s| {
        samples
            .entry(agent.to_string())
            .or_default()
            .push(s.clone())
    })?;
    let mut parts = Vec::new();
    for (i, chunk) in events.chunks(PART).enumerate() {
        let id = format!("migrate-{hour}-events-{i}");
        parts.push(batch(id, MIGRATED_AGENT, chunk.to_vec(), Vec::new()));
    }
    for (agent, mut list) in samples {
        list.sort_by_key(|s| s.timestamp);
        for (i, chunk) in list.chunks(PART).enumerate() {
            let id = format!("migrate-{hour}-samples-{agent}-{i}");
            parts.push(batch(id, &agent, Vec::new(), chunk.to_vec()));
        }
    }
    for b in parts {
        match target.append(&b)? {
            Appended::Stored => {
                done.events += b.events.len() as u64;
                done.samples += b.samples.len() as u64;
            }
            Appended::Duplicate => done.already_copied += 1,
        }
    }
    Ok(())
}

/// Events and samples in `[from, to)` of a store.
fn counts(store: &dyn Storage, from: i64, to: i64) -> Result<(u64, u64), StoreError> {
    let filter = Filter::default();
    let q = EventQuery {
        from,
        to,
        filter: &filter,
        group: Group::All,
        quantiles: &[],
    };
    let pushdown = store.pushdown();
    let events = match pushdown.map(|p| p.aggregate_events(&q)).transpose()? {
        Some(groups) => groups.iter().map(|g| g.requests).sum(),
        None => {
            let mut n = 0;
            store.scan_event_facts(from, to, &mut |_| n += 1)?;
            n
        }
    };
    let samples = match pushdown.map(|p| p.aggregate_agents(from, to)).transpose()? {
        Some(agents) => agents.iter().map(|a| a.samples).sum(),
        None => {
            let mut n = 0;
            store.scan_samples(from, to, None, &mut |_, _| n += 1)?;
            n
        }
    };
    Ok((events, samples))
}

/// Checks each day of `hours` holds the same counts on both sides; returns the days checked.
fn verify(
    source: &SledStore,
    target: &ClickHouseStore,
    hours: &[i64],
) -> Result<u64, MigrateError> {
    let days: std::collections::BTreeSet<i64> = hours
        .iter()
        .map(|h| h.div_euclid(DAY_MS) * DAY_MS)
        .collect();
    let mut wrong = Vec::new();
    for &day in &days {
        let (a, b) = (
            counts(source, day, day + DAY_MS)?,
            counts(target, day, day + DAY_MS)?,
        );
        if a != b {
            wrong.push(format!(
                "{}: sled {} events {} samples, clickhouse {} events {} samples",
                &Timestamp(day).to_rfc3339()[..10],
                a.0,
                a.1,
                b.0,
                b.1
            ));
        }
    }
    if wrong.is_empty() {
        Ok(days.len() as u64)
    } else {
        Err(MigrateError::Mismatch(wrong.join("; ")))
    }
}
