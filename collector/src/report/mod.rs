//! Scheduled reports: each profile's `[[report]]` runs at its time (hourly; daily or weekly at
//! `at` in `timezone`) over the period before it, and is written as JSON (always: the report's
//! record), HTML with SVG charts and Markdown under `analytics/reports/<profile>/<report>/`, kept
//! for `keep_for`, listed and served by the API, and announced to the report's webhook through the
//! alert outbox (so the announcement is retried like a notification).

pub mod content;
pub mod render;
pub mod svg;

use std::path::{Path, PathBuf};

use jiff::civil::Date;
use jiff::ToSpan;
use serde_json::{json, Value};
use tda_schema::sections::{ReportEvery, ReportFormat, ReportSchedule};
use tda_schema::Timestamp;

use crate::alert::store::Outgoing;
use crate::arrivals::Arrivals;
use crate::fleet::Sharing;
use crate::profiles::Entry;
use crate::store::{Storage, StoreError};
use tda_schema::answers::ReportListing;
use tda_schema::timestamp::HOUR_MS;

/// When the latest run due at or before `now` is, and the start of the period it covers.
pub fn last_due(spec: &ReportSchedule, now: i64) -> Result<(i64, i64), String> {
    if spec.every == ReportEvery::Hourly {
        let at = now.div_euclid(HOUR_MS) * HOUR_MS;
        return Ok((at, at - HOUR_MS));
    }
    let tz = spec.zone()?;
    let (h, m) = spec.time_of_day()?;
    let err = |e: jiff::Error| e.to_string();
    let now_z = jiff::Timestamp::from_millisecond(now)
        .map_err(err)?
        .to_zoned(tz.clone());
    let at = |d: Date| -> Result<i64, String> {
        Ok(d.at(h, m, 0, 0)
            .to_zoned(tz.clone())
            .map_err(err)?
            .timestamp()
            .as_millisecond())
    };
    let (mut day, step) = match spec.every {
        ReportEvery::Weekly => {
            let back = (now_z.weekday().to_monday_zero_offset() - spec.weekday.from_monday())
                .rem_euclid(7);
            (
                now_z
                    .date()
                    .checked_sub(i64::from(back).days())
                    .map_err(err)?,
                7,
            )
        }
        _ => (now_z.date(), 1),
    };
    if at(day)? > now {
        day = day.checked_sub(step.days()).map_err(err)?;
    }
    let before = day.checked_sub(step.days()).map_err(err)?;
    Ok((at(day)?, at(before)?))
}

/// `analytics/reports/<profile>/<report>/`, from `analytics/reports/`.
fn dir_of(root: &Path, profile: &str, report: &str) -> PathBuf {
    root.join(profile).join(tda_schema::profile::slug(report))
}

/// A run's file stem: its time in UTC, `20261201T080000Z`.
fn stamp(ms: i64) -> String {
    Timestamp(ms)
        .to_rfc3339()
        .replace(['-', ':'], "")
        .split('.')
        .next()
        .unwrap_or_default()
        .trim_end_matches('Z')
        .to_string()
        + "Z"
}

fn stamp_ms(stem: &str) -> Option<i64> {
    let s = stem.strip_suffix('Z')?;
    if s.len() != 15 {
        return None;
    }
    let text = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13],
        &s[13..15]
    );
    Timestamp::parse(&text).ok().map(|t| t.0)
}

fn extension(f: ReportFormat) -> &'static str {
    match f {
        ReportFormat::Html => "html",
        ReportFormat::Json => "json",
        ReportFormat::Markdown => "md",
    }
}

fn write_atomic(path: &Path, body: &[u8]) -> std::io::Result<()> {
    tda_daemon::durable::write_atomic(path, body)
}

fn io(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// A report's listing entry: id, times, formats and links.
fn listing(external: &str, profile: &str, dir: &Path, stem: &str, doc: &Value) -> ReportListing {
    let report = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = format!(
        "{}/api/v1/reports/{profile}/{report}/{stem}",
        external.trim_end_matches('/')
    );
    let links = ["html", "md", "json"]
        .into_iter()
        .filter(|ext| dir.join(format!("{stem}.{ext}")).exists())
        .map(|ext| (ext.to_string(), format!("{base}.{ext}")))
        .collect();
    fn field<T: serde::de::DeserializeOwned + Default>(doc: &Value, name: &str) -> T {
        serde_json::from_value(doc[name].clone()).unwrap_or_default()
    }
    ReportListing {
        id: format!("{profile}/{report}/{stem}"),
        profile: profile.to_string(),
        report: field(doc, "report"),
        family: field(doc, "family"),
        from: field(doc, "from"),
        to: field(doc, "to"),
        generated_at: field(doc, "generated_at"),
        summary: field(doc, "summary"),
        links,
    }
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

/// What making reports reads and writes.
pub struct Reports<'a> {
    /// The data reported on.
    pub store: &'a dyn Storage,
    /// Where report files are shared with other collectors, and the outbox announcements go to.
    pub sharing: Sharing<'a>,
    /// `analytics/reports/`.
    pub root: PathBuf,
    /// The collector's address as readers reach it (`alerting.external_url`), for links.
    pub external_url: String,
}

impl Reports<'_> {
    /// Makes one report of `spec` over `[from, to)` stamped `to`; writes its files, announces it,
    /// and answers its listing entry.
    pub fn produce(
        &self,
        entry: &Entry,
        spec: &ReportSchedule,
        from: i64,
        to: i64,
        now: i64,
    ) -> Result<ReportListing, StoreError> {
        let started = std::time::Instant::now();
        let doc = content::build(self.store, entry, &spec.name, from, to, now)?;
        self.publish(entry, spec, doc, (from, to), now, started)
    }
    /// Writes a built report's files, announces it, and answers its listing entry.
    fn publish(
        &self,
        entry: &Entry,
        spec: &ReportSchedule,
        doc: Value,
        (from, to): (i64, i64),
        now: i64,
        started: std::time::Instant,
    ) -> Result<ReportListing, StoreError> {
        let dir = dir_of(&self.root, &entry.id, &spec.name);
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let stem = stamp(to);
        for f in &spec.formats {
            let body = match f {
                ReportFormat::Html => render::html(&doc),
                ReportFormat::Markdown => render::markdown(&doc),
                ReportFormat::Json => continue,
            };
            let path = dir.join(format!("{stem}.{}", extension(*f)));
            write_atomic(&path, body.as_bytes()).map_err(|e| io(&path, e))?;
            self.sharing.share_report(&path, Some(&body));
        }
        let path = dir.join(format!("{stem}.json"));
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        write_atomic(&path, text.as_bytes()).map_err(|e| io(&path, e))?;
        self.sharing.share_report(&path, Some(&text));
        let listed = listing(&self.external_url, &entry.id, &dir, &stem, &doc);
        tracing::info!(profile = %entry.id, report = %spec.name, from = %Timestamp(from).to_rfc3339(), to = %Timestamp(to).to_rfc3339(), elapsed_ms = started.elapsed().as_millis() as u64, "report written");
        if let Some(url) = &spec.webhook {
            let body = json!({"event": "report_ready", "profile": entry.id, "report": spec.name, "from": doc["from"], "to": doc["to"],
                "summary": doc["summary"], "links": listed.links})
            .to_string();
            self.sharing.alerts.enqueue(&Outgoing {
                receiver: format!("report {}/{}", entry.id, spec.name),
                url: url.clone(),
                body,
                headers: vec![("content-type".into(), "application/json".into())],
                timeout_ms: 10_000,
                dedup_key: format!(
                    "report-{}-{}-{stem}",
                    entry.id,
                    tda_schema::profile::slug(&spec.name)
                ),
                attempts: 0,
                next_attempt: now,
                created_at: now,
            })?;
        }
        Ok(listed)
    }
    /// Every report on disk, newest first.
    pub fn list(&self) -> Vec<ReportListing> {
        let root = &self.root;
        let mut out = Vec::new();
        for profile in subdirs(root) {
            for dir in subdirs(&profile) {
                for file in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    let path = file.path();
                    if path.extension().is_some_and(|e| e == "json") {
                        let stem = path
                            .file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        let doc: Value = std::fs::read(&path)
                            .ok()
                            .and_then(|b| serde_json::from_slice(&b).ok())
                            .unwrap_or_default();
                        if doc["version"].as_u64() != Some(u64::from(content::VERSION)) {
                            continue; // not a report this build wrote (or one being written)
                        }
                        let name = profile
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        out.push(listing(&self.external_url, &name, &dir, &stem, &doc));
                    }
                }
            }
        }
        out.sort_by(|a, b| b.to.cmp(&a.to));
        out
    }
    /// Runs every report whose latest due time has no report yet, and deletes reports past their
    /// `keep_for`.
    pub fn run_due(&self, profiles: &[Entry], now: i64, arrivals: &mut Arrivals) {
        for entry in profiles {
            for spec in &entry.profile.reports {
                let (at, from) = match last_due(spec, now) {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::error!(profile = %entry.id, report = %spec.name, error = %e, "report cannot be scheduled");
                        continue;
                    }
                };
                let dir = dir_of(&self.root, &entry.id, &spec.name);
                self.prune(&dir, now - spec.keep_for.0.as_millis() as i64);
                let job = format!("report {}/{}", entry.id, spec.name);
                let made = dir.join(format!("{}.json", stamp(at)));
                let done = if !made.exists() {
                    self.produce(entry, spec, from, at, now).map(drop)
                } else if arrivals.due(&job) {
                    self.redo(entry, spec, (from, at), &made, now)
                } else {
                    continue;
                };
                match done {
                    Ok(()) => arrivals.ran(&job),
                    Err(e) => {
                        tracing::error!(profile = %entry.id, report = %spec.name, error = %e, "report failed; will try again")
                    }
                }
            }
        }
    }
    /// Makes a report again after data for its period arrived in bulk (it may have been made before
    /// the data came); replaces and announces it only if what it says changed.
    fn redo(
        &self,
        entry: &Entry,
        spec: &ReportSchedule,
        (from, to): (i64, i64),
        made: &Path,
        now: i64,
    ) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let doc = content::build(self.store, entry, &spec.name, from, to, now)?;
        let old: Value = std::fs::read(made)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if old["summary"] == doc["summary"] {
            return Ok(());
        }
        tracing::info!(profile = %entry.id, report = %spec.name, "data arrived for a report already made; making it again");
        self.publish(entry, spec, doc, (from, to), now, started)
            .map(drop)
    }
    /// Deletes a report directory's files stamped before `cutoff`.
    fn prune(&self, dir: &Path, cutoff: i64) {
        for file in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = file.path();
            let old = path
                .file_stem()
                .and_then(|s| stamp_ms(&s.to_string_lossy()))
                .is_some_and(|t| t < cutoff);
            if old && std::fs::remove_file(&path).is_ok() {
                self.sharing.share_report(&path, None);
                tracing::info!(file = %path.display(), "old report deleted");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tda_schema::sections::Weekday;

    fn spec(every: ReportEvery, at: Option<&str>, tz: &str) -> ReportSchedule {
        ReportSchedule {
            name: "r".into(),
            every,
            at: at.map(String::from),
            timezone: tz.into(),
            weekday: Weekday::Wednesday,
            formats: vec![ReportFormat::Html],
            webhook: None,
            keep_for: tda_schema::duration::HumanDuration::secs(86_400),
        }
    }

    fn t(s: &str) -> i64 {
        Timestamp::parse(s).unwrap().0
    }

    #[test]
    fn due_times_follow_the_time_zone() {
        let now = t("2026-12-02T07:30:00Z"); // a Wednesday, 08:30 in Paris (UTC+1)
        let daily = spec(ReportEvery::Daily, Some("08:00"), "Europe/Paris");
        assert_eq!(
            last_due(&daily, now).unwrap(),
            (t("2026-12-02T07:00:00Z"), t("2026-12-01T07:00:00Z"))
        );
        let later = spec(ReportEvery::Daily, Some("09:00"), "Europe/Paris");
        assert_eq!(
            last_due(&later, now).unwrap().0,
            t("2026-12-01T08:00:00Z"),
            "not yet today"
        );
        let weekly = spec(ReportEvery::Weekly, Some("08:00"), "Europe/Paris");
        assert_eq!(
            last_due(&weekly, now).unwrap(),
            (t("2026-12-02T07:00:00Z"), t("2026-11-25T07:00:00Z"))
        );
        let hourly = spec(ReportEvery::Hourly, None, "UTC");
        assert_eq!(
            last_due(&hourly, now).unwrap(),
            (t("2026-12-02T07:00:00Z"), t("2026-12-02T06:00:00Z"))
        );
        // Summer time: 08:00 in Paris is 06:00 UTC.
        let summer = t("2026-07-01T12:00:00Z");
        assert_eq!(
            last_due(&daily, summer).unwrap().0,
            t("2026-07-01T06:00:00Z")
        );
    }

    #[test]
    fn stamps_round_trip() {
        let ms = t("2026-12-02T07:00:00Z");
        assert_eq!(stamp(ms), "20261202T070000Z");
        assert_eq!(stamp_ms(&stamp(ms)), Some(ms));
        assert_eq!(stamp_ms("nope"), None);
    }
}
