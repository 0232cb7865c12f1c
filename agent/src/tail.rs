//! Follows a JSON-lines request log (`[request_log]`): reads lines as they are written (notify,
//! with a polling fallback), follows rotation and truncation, maps each line's fields to a usage
//! event, and keeps its position in the spool directory so a restart resumes where it stopped.
//!
//! (Over 600 lines with its unit tests, which stay beside the follower they drive: the code
//! is about 520.)

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use notify::{RecursiveMode, Watcher};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tda_schema::config::RequestLogConfig;
use tda_schema::{Event, Timestamp};
use tokio::sync::{mpsc, watch};

use crate::batch::Record;
use crate::counters::{add, Counters};
use crate::sdk::fields::{self, Source};
use crate::settings::Live;

/// Most bytes read from the log per step (a line longer than this is still read whole, up to
/// [`MAX_LINE`]). Each step's events go to the batcher as one record, so this bounds what a
/// queued record holds: at 4 MiB the agent reached 151-160 MiB RSS reading a large backlog, at
/// 512 KiB 52-55 MiB, at the same speed (BENCHMARKS.md, "Integrations").
const READ_CHUNK: u64 = 512 << 10;
/// How often the position is saved while a backlog is read.
const SAVE_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
/// Longest line taken; a longer one is skipped with a warning.
pub const MAX_LINE: usize = 1 << 20;
/// The position file's format version.
const POSITION_VERSION: u32 = 1;
/// Bytes at the start of a file kept to recognise it (a copytruncate rewrites them).
const HEAD_BYTES: usize = 256;
/// The position file, in the spool directory.
pub const POSITION_FILE: &str = "request-log.position";

/// A file's identity: device and inode (a rotated file keeps its identity under a new name).
type FileId = (u64, u64);

/// Where reading stopped, persisted after every step that read lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// Format version.
    pub version: u32,
    /// The configured path.
    pub path: PathBuf,
    /// The identity of the file read (it may since have been renamed).
    pub file: FileId,
    /// Bytes consumed.
    pub offset: u64,
    /// Lines consumed.
    pub line: u64,
    /// The file's first bytes (up to 256) when last read.
    pub head: Vec<u8>,
}

/// The file being read.
struct Open {
    reader: BufReader<File>,
    id: FileId,
    offset: u64,
    line: u64,
    /// Inside a line longer than [`MAX_LINE`], discarding until its end.
    skipping: bool,
    /// The file's first bytes as last seen.
    head: Vec<u8>,
}

impl Open {
    /// Whether the file was truncated since the last read: shorter than what was read, or its
    /// first bytes changed (truncated and written again past the old length).
    fn truncated(&mut self) -> std::io::Result<bool> {
        if self.reader.get_ref().metadata()?.len() < self.offset {
            return Ok(true);
        }
        let now = self.head_now()?;
        let same = now.starts_with(&self.head);
        self.head = now;
        Ok(!same)
    }

    /// The file's first bytes now.
    fn head_now(&self) -> std::io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let mut head = vec![0u8; HEAD_BYTES];
        let n = self.reader.get_ref().read_at(&mut head, 0)?;
        head.truncate(n);
        Ok(head)
    }

    fn with_head(mut self, head: Vec<u8>) -> Self {
        self.head = head;
        self
    }
}

/// What one step read.
#[derive(Debug, Default)]
pub struct Step {
    /// Events from well-formed lines.
    pub events: Vec<Event>,
    /// Lines refused (logged with file and line number).
    pub rejected: u64,
    /// Whether more may be read at once (the chunk limit was reached).
    pub more: bool,
    /// Bytes consumed.
    pub bytes: u64,
}

/// A request log being followed.
pub struct Tail {
    cfg: RequestLogConfig,
    position_file: PathBuf,
    open: Option<Open>,
}

fn id_of(meta: &std::fs::Metadata) -> FileId {
    (meta.dev(), meta.ino())
}

impl Tail {
    /// Follows `cfg.path`, keeping its position in `spool_dir`.
    pub fn new(cfg: RequestLogConfig, spool_dir: &Path) -> Tail {
        Tail {
            cfg,
            position_file: spool_dir.join(POSITION_FILE),
            open: None,
        }
    }

    /// The settings it follows with.
    pub fn config(&self) -> &RequestLogConfig {
        &self.cfg
    }

    /// Reads what was written since the last step, switching files on rotation.
    pub fn step(&mut self) -> std::io::Result<Step> {
        if self.open.is_none() {
            self.open = self.reopen()?;
            self.save(); // a first run's start point holds across a restart before any line
        }
        let Some(open) = self.open.as_mut() else {
            return Ok(Step::default());
        };
        if open.truncated()? {
            tracing::warn!(file = %self.cfg.path.display(), offset = open.offset, "request log truncated; reading it from the start");
            open.reader.seek(SeekFrom::Start(0))?;
            (open.offset, open.line, open.skipping) = (0, 0, false);
        }
        let mut step = self.read_lines()?;
        if !step.more && self.follow_rotation()? {
            let next = self.read_lines()?;
            step.events.extend(next.events);
            (step.rejected, step.more) = (step.rejected + next.rejected, next.more);
            step.bytes += next.bytes;
        }
        Ok(step)
    }

    /// Opens the log at the saved position, a renamed file the position names, or the start
    /// point of a first run; `None` while the file does not exist.
    fn reopen(&self) -> std::io::Result<Option<Open>> {
        let saved = self.saved().filter(|p| p.path == self.cfg.path);
        let Ok(file) = File::open(&self.cfg.path) else {
            return Ok(None);
        };
        let id = id_of(&file.metadata()?);
        match saved {
            Some(p) if p.file == id => Ok(Some(at(file, id, p.offset, p.line)?.with_head(p.head))),
            Some(p) => match renamed(&self.cfg.path, p.file) {
                Some(old) => Ok(Some(at(old, p.file, p.offset, p.line)?.with_head(p.head))),
                None => Ok(Some(at(file, id, 0, 0)?)),
            },
            None if self.cfg.start_at == tda_schema::config::StartAt::Beginning => {
                Ok(Some(at(file, id, 0, 0)?))
            }
            None => {
                let (len, lines) = count_lines(&self.cfg.path)?;
                Ok(Some(at(file, id, len, lines)?))
            }
        }
    }

    /// Once the file read is drained: when the path now names another file, switch to it
    /// (true when it did).
    fn follow_rotation(&mut self) -> std::io::Result<bool> {
        let Some(open) = &self.open else {
            return Ok(false);
        };
        let Ok(meta) = std::fs::metadata(&self.cfg.path) else {
            return Ok(false); // Renamed, the new file not there yet: keep the old one.
        };
        if id_of(&meta) != open.id {
            tracing::info!(file = %self.cfg.path.display(), lines = open.line, "request log rotated; following the new file");
            let file = File::open(&self.cfg.path)?;
            self.open = Some(at(file, id_of(&meta), 0, 0)?);
            self.save();
            return Ok(true);
        }
        Ok(false)
    }

    fn read_lines(&mut self) -> std::io::Result<Step> {
        let mut step = Step::default();
        let Some(open) = self.open.as_mut() else {
            return Ok(step);
        };
        let mut line = Vec::new();
        let mut read = 0u64;
        while read < READ_CHUNK {
            line.clear();
            let start = open.offset;
            let n = (&mut open.reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            if line.last() != Some(&b'\n') {
                if n <= MAX_LINE {
                    // A line still being written: read it whole next time.
                    open.reader.seek(SeekFrom::Start(start))?;
                    break;
                }
                tracing::warn!(file = %self.cfg.path.display(), line = open.line + 1, max_bytes = MAX_LINE, "request log line too long; skipped");
                open.skipping = true;
                (open.offset, read) = (open.offset + n as u64, read + n as u64);
                continue;
            }
            (open.offset, read) = (open.offset + n as u64, read + n as u64);
            if std::mem::take(&mut open.skipping) {
                step.rejected += 1;
                open.line += 1;
                continue;
            }
            open.line += 1;
            match line_event(&self.cfg, &line) {
                Ok(Some(e)) => step.events.push(e),
                Ok(None) => {}
                Err(e) => {
                    step.rejected += 1;
                    tracing::warn!(file = %self.cfg.path.display(), line = open.line, error = %e, "request log line refused");
                }
            }
        }
        (step.more, step.bytes) = (read >= READ_CHUNK, read);
        if read > 0 && open.head.len() < HEAD_BYTES {
            open.head = open.head_now()?;
        }
        Ok(step)
    }

    fn saved(&self) -> Option<Position> {
        let text = std::fs::read(&self.position_file).ok()?;
        match serde_json::from_slice::<Position>(&text) {
            Ok(p) if p.version == POSITION_VERSION => Some(p),
            _ => {
                tracing::warn!(file = %self.position_file.display(), "request log position unreadable; starting afresh");
                None
            }
        }
    }

    /// Writes the position durably (`tda_daemon::durable`: a crash leaves the old position or
    /// the new one, never an empty file).
    pub fn save(&self) {
        if let Some(p) = self.position() {
            self.save_at(&p);
        }
    }

    /// Where reading stands now, if a file is open.
    fn position(&self) -> Option<Position> {
        let open = self.open.as_ref()?;
        Some(Position {
            version: POSITION_VERSION,
            path: self.cfg.path.clone(),
            file: open.id,
            offset: open.offset,
            line: open.line,
            head: open.head.clone(),
        })
    }

    /// Writes `p` as the saved position, durably.
    fn save_at(&self, p: &Position) {
        let written = serde_json::to_vec(p)
            .map_err(std::io::Error::other)
            .and_then(|bytes| tda_daemon::durable::write_atomic(&self.position_file, &bytes));
        if let Err(e) = written {
            tracing::warn!(file = %self.position_file.display(), error = %e, "cannot save the request log position");
        }
    }
}

fn at(file: File, id: FileId, offset: u64, line: u64) -> std::io::Result<Open> {
    let mut reader = BufReader::new(file);
    reader.seek(SeekFrom::Start(offset))?;
    Ok(Open {
        reader,
        id,
        offset,
        line,
        skipping: false,
        head: Vec::new(),
    })
}

/// A file beside `path` with identity `id` (the log the position names, since renamed).
fn renamed(path: &Path, id: FileId) -> Option<File> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .find(|e| e.metadata().is_ok_and(|m| id_of(&m) == id))
        .and_then(|e| File::open(e.path()).ok())
}

fn count_lines(path: &Path) -> std::io::Result<(u64, u64)> {
    let mut reader = BufReader::new(File::open(path)?);
    let (mut len, mut lines) = (0u64, 0u64);
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok((len, lines));
        }
        lines += buf.iter().filter(|b| **b == b'\n').count() as u64;
        let n = buf.len();
        len += n as u64;
        reader.consume(n);
    }
}

/// One line to an event: `None` for a blank line.
pub fn line_event(cfg: &RequestLogConfig, line: &[u8]) -> Result<Option<Event>, String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let mut obj: Map<String, Value> = match serde_json::from_slice(line) {
        Ok(Value::Object(o)) => o,
        Ok(_) => return Err("not a JSON object".into()),
        Err(e) => return Err(format!("not JSON: {e}")),
    };
    let take = |obj: &mut Map<String, Value>, names: &[String]| {
        names
            .iter()
            .find_map(|n| obj.remove(n).filter(|v| !v.is_null()))
    };
    let timestamp = match take(&mut obj, &cfg.timestamp) {
        None => Timestamp::now(),
        Some(v) => Timestamp(crate::sdk::time(&v).map_err(|e| format!("timestamp: {e}"))?),
    };
    let user_id = match take(&mut obj, &cfg.user_id) {
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(format!(
                "no user id (looked for {})",
                cfg.user_id.join(", ")
            ))
        }
    };
    let src = Source {
        at: "line",
        name: None,
        user_id,
        timestamp,
        properties: obj,
    };
    fields::event(&cfg.mapping, src)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Follows the configured request log until `stop` turns true; picks up config reloads.
pub async fn run(
    live: Arc<Live>,
    records: mpsc::Sender<Record>,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tail: Option<Tail> = None;
    let (wake_tx, mut wake) = mpsc::unbounded_channel();
    let mut _watcher = None;
    loop {
        let cfg = live.config();
        if tail.as_ref().map(|t| t.config()) != cfg.request_log.as_ref() {
            tail = cfg
                .request_log
                .clone()
                .map(|c| Tail::new(c, &cfg.spool.dir));
            _watcher = tail
                .as_ref()
                .and_then(|t| watch_dir(&t.cfg.path, wake_tx.clone()));
        }
        let poll = tail
            .as_ref()
            .map_or(std::time::Duration::from_secs(1), |t| t.cfg.poll_interval.0);
        if let Some(t) = tail.take() {
            let durable = cfg.intake.ack == tda_schema::config::IntakeAck::Durable;
            tail = drain(t, &records, &counters, durable).await;
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = wake.recv() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

/// Hands a step's events to the batcher; with `durable`, waits until they are on disk (the
/// position is saved only after). False if they were not taken.
async fn hand_over(records: &mpsc::Sender<Record>, events: Vec<Event>, durable: bool) -> bool {
    let (ack, written) = if durable {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    if records.send(Record::Events(events, ack)).await.is_err() {
        return false;
    }
    match written {
        Some(rx) => rx.await.unwrap_or(false),
        None => true,
    }
}

/// Reads until nothing more is there, handing events to the batcher and saving the position;
/// `None` if the reading task failed (the next pass starts afresh from the saved position).
async fn drain(
    mut tail: Tail,
    records: &mpsc::Sender<Record>,
    counters: &Counters,
    durable: bool,
) -> Option<Tail> {
    // The position is fsynced at most every SAVE_EVERY through a backlog, always when caught
    // up, and, on the way out, as it stood before a step whose events were not handed over.
    let (mut saved, mut unsaved) = (std::time::Instant::now(), false);
    loop {
        let read = tokio::task::spawn_blocking(move || {
            let before = tail.position();
            let step = tail.step();
            (tail, before, step)
        })
        .await;
        let (back, before, step) = match read {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(error = %e, "request log task failed; starting afresh");
                return None;
            }
        };
        tail = back;
        let step = match step {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(file = %tail.cfg.path.display(), error = %e, "cannot read the request log; will try again");
                let mut tail = persist(tail, before.filter(|_| unsaved)).await?;
                tail.open = None;
                return Some(tail);
            }
        };
        add(&counters.log_lines_rejected, step.rejected);
        let n = step.events.len() as u64;
        if n > 0 && !hand_over(records, step.events, durable).await {
            // Shutting down, or not written: the saved position stays before these lines.
            return persist(tail, before.filter(|_| unsaved)).await;
        }
        add(&counters.log_events_read, n);
        add(&counters.events_received, n);
        unsaved |= step.bytes > 0;
        if unsaved && (!step.more || saved.elapsed() >= SAVE_EVERY) {
            let now = tail.position();
            tail = persist(tail, now).await?;
            (saved, unsaved) = (std::time::Instant::now(), false);
        }
        if !step.more {
            return Some(tail);
        }
    }
}

/// Saves `at` (if any) as the tail's position, off the async threads (it fsyncs).
async fn persist(tail: Tail, at: Option<Position>) -> Option<Tail> {
    tokio::task::spawn_blocking(move || {
        if let Some(p) = &at {
            tail.save_at(p);
        }
        tail
    })
    .await
    .ok()
}

/// Wakes the tail when anything changes in the log's directory (creation, writes, renames).
fn watch_dir(path: &Path, wake: mpsc::UnboundedSender<()>) -> Option<notify::RecommendedWatcher> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())?
        .to_path_buf();
    let mut w = notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
        if e.is_ok_and(|e| !matches!(e.kind, notify::EventKind::Access(_))) {
            let _ = wake.send(());
        }
    })
    .map_err(|e| tracing::warn!(error = %e, "cannot watch the request log; polling only"))
    .ok()?;
    match w.watch(&dir, RecursiveMode::NonRecursive) {
        Ok(()) => Some(w),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the request log's directory; polling only");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn cfg(path: &Path, start_at: tda_schema::config::StartAt) -> RequestLogConfig {
        let toml = format!(
            "path = {:?}\nstart_at = \"beginning\"\n",
            path.display().to_string()
        );
        let mut c: RequestLogConfig = toml::from_str(&toml).unwrap();
        c.start_at = start_at;
        c
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn line(user: &str, i: u32) -> String {
        format!("{{\"ts\": 1764662400000, \"user\": \"{user}\", \"route\": \"/api/v1/r{i}\", \"status\": 200, \"latency_ms\": {i}, \"method\": \"GET\"}}\n")
    }

    fn users(tail: &mut Tail) -> Vec<String> {
        let step = tail.step().unwrap();
        tail.save();
        step.events.into_iter().map(|e| e.user_id).collect()
    }

    fn setup() -> (tempfile::TempDir, PathBuf, Tail) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("requests.jsonl");
        let tail = Tail::new(
            cfg(&log, tda_schema::config::StartAt::Beginning),
            dir.path(),
        );
        (dir, log, tail)
    }

    #[test]
    fn fields_are_mapped_and_the_rest_kept() {
        let c = cfg(Path::new("/x"), tda_schema::config::StartAt::End);
        let e = line_event(&c, line("u1", 7).as_bytes()).unwrap().unwrap();
        assert_eq!(
            (e.timestamp.0, e.user_id.as_str()),
            (1_764_662_400_000, "u1")
        );
        assert_eq!(
            (e.feature.as_str(), e.route.as_deref()),
            ("/api/v1/r7", Some("/api/v1/r7"))
        );
        assert_eq!((e.status, e.latency_ms), (Some(200), Some(7.0)));
        assert_eq!(
            Value::Object(e.properties),
            serde_json::json!({"method": "GET"})
        );
        assert_eq!(line_event(&c, b"  \n").unwrap(), None);
        assert_eq!(line_event(&c, b"[1]\n").unwrap_err(), "not a JSON object");
        assert_eq!(
            line_event(&c, b"{\"route\": \"/\"}\n").unwrap_err(),
            "no user id (looked for user_id, user)"
        );
        assert_eq!(
            line_event(&c, b"{\"user\": \"u\", \"route\": \"/\", \"status\": 9}\n").unwrap_err(),
            "line.status: 9 is not an HTTP status (100-599)"
        );
    }

    #[test]
    fn lines_are_read_once_and_a_partial_line_waits_for_its_end() {
        let (_dir, log, mut tail) = setup();
        assert!(users(&mut tail).is_empty(), "no file yet");
        append(&log, &line("a", 1));
        append(&log, &line("b", 2)[..20]);
        assert_eq!(users(&mut tail), ["a"]);
        assert!(users(&mut tail).is_empty());
        append(&log, &line("b", 2)[20..]);
        assert_eq!(users(&mut tail), ["b"]);
    }

    #[test]
    fn rotation_by_rename_and_truncation_are_followed() {
        let (_dir, log, mut tail) = setup();
        append(&log, &line("a", 1));
        assert_eq!(users(&mut tail), ["a"]);
        append(&log, &line("b", 2));
        std::fs::rename(&log, log.with_extension("1")).unwrap();
        assert_eq!(users(&mut tail), ["b"], "the renamed file is drained first");
        append(&log, &line("c", 3));
        assert_eq!(users(&mut tail), ["c"], "then the new file from its start");
        std::fs::write(&log, "").unwrap();
        append(&log, &line("d", 4));
        assert_eq!(
            users(&mut tail),
            ["d"],
            "a truncated file is read from its start"
        );
    }

    #[test]
    fn a_restart_resumes_at_the_saved_position_even_after_a_rotation() {
        let (dir, log, mut tail) = setup();
        append(&log, &line("a", 1));
        assert_eq!(users(&mut tail), ["a"]);
        drop(tail);
        append(&log, &line("b", 2));
        let mut again = Tail::new(
            cfg(&log, tda_schema::config::StartAt::Beginning),
            dir.path(),
        );
        assert_eq!(users(&mut again), ["b"]);
        drop(again);
        append(&log, &line("c", 3));
        std::fs::rename(&log, log.with_extension("1")).unwrap();
        append(&log, &line("d", 4));
        let mut third = Tail::new(
            cfg(&log, tda_schema::config::StartAt::Beginning),
            dir.path(),
        );
        assert_eq!(
            users(&mut third),
            ["c", "d"],
            "the rest of the renamed file, then the new one"
        );
    }

    #[test]
    fn a_first_run_starts_at_the_end_unless_told_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("requests.jsonl");
        append(&log, &line("old", 1));
        let mut tail = Tail::new(cfg(&log, tda_schema::config::StartAt::End), dir.path());
        assert!(users(&mut tail).is_empty());
        append(&log, &line("new", 2));
        assert_eq!(users(&mut tail), ["new"]);
    }

    #[test]
    fn bad_and_overlong_lines_are_refused_and_reading_goes_on() {
        let (_dir, log, mut tail) = setup();
        append(&log, "not json\n");
        append(
            &log,
            &format!("{{\"user\": \"{}\"}}\n", "x".repeat(MAX_LINE + 10)),
        );
        append(&log, &line("a", 1));
        // The overlong line is more than one step reads: step until the log is drained.
        let (mut rejected, mut got) = (0, Vec::new());
        loop {
            let step = tail.step().unwrap();
            rejected += step.rejected;
            got.extend(step.events.into_iter().map(|e| e.user_id));
            if !step.more {
                break;
            }
        }
        assert_eq!(rejected, 2);
        assert_eq!(got, ["a"]);
    }
}
