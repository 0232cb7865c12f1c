//! The open batch's write-ahead log (`open.wal` in the spool directory), for `intake.ack =
//! "durable"`: accepted events are appended and fsynced before the intake answers, and the log
//! is cleared once their batch is in the spool. After a crash the log's events become a batch
//! again, under the id the open batch had, so a batch that was spooled (or even sent) before the
//! crash is recognised as a duplicate, not stored twice.
//!
//! Format: a first line `{"batch_id": "..."}`, then one JSON event per line. A torn last line
//! (a crash while writing, before the fsync that acknowledges it) is ignored.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tda_schema::Event;

/// The log's file name in the spool directory.
pub const FILE: &str = "open.wal";

#[derive(Serialize, Deserialize)]
struct Header {
    batch_id: String,
}

/// Events left in the log by an earlier run, with the id their batch had.
#[derive(Debug, PartialEq)]
pub struct Recovered {
    /// The open batch's id.
    pub batch_id: String,
    /// Its events, in the order they were accepted.
    pub events: Vec<Event>,
}

/// The log of the open batch.
pub struct Wal {
    path: PathBuf,
    file: Option<File>,
    /// The batch the file's events belong to.
    batch_id: Option<String>,
}

impl Wal {
    /// Opens the log in `dir`, returning what an earlier run left in it (the file is left as
    /// it is until [`Wal::clear`]).
    pub fn open(dir: &Path) -> io::Result<(Wal, Option<Recovered>)> {
        fs::create_dir_all(dir)?;
        let path = dir.join(FILE);
        let recovered = match File::open(&path) {
            Ok(f) => read(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok((
            Wal {
                path,
                file: None,
                batch_id: None,
            },
            recovered,
        ))
    }

    /// Appends `events` of the batch `batch_id` (starting the file over for a new batch) and
    /// syncs them to disk.
    pub fn append(&mut self, batch_id: &str, events: &[Event]) -> io::Result<()> {
        if self.batch_id.as_deref() != Some(batch_id) || self.file.is_none() {
            let mut file = File::create(&self.path)?;
            let header = Header {
                batch_id: batch_id.to_string(),
            };
            writeln!(file, "{}", serde_json::to_string(&header)?)?;
            self.file = Some(file);
            self.batch_id = Some(batch_id.to_string());
            tda_daemon::durable::sync_parent(&self.path)?;
        }
        let mut text = Vec::with_capacity(256 * events.len());
        for e in events {
            serde_json::to_writer(&mut text, e)?;
            text.push(b'\n');
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("log not open"))?;
        file.write_all(&text)?;
        file.sync_data()
    }

    /// Empties the log: its batch is in the spool now.
    pub fn clear(&mut self) -> io::Result<()> {
        self.file = None;
        self.batch_id = None;
        match fs::remove_file(&self.path) {
            Ok(()) => tda_daemon::durable::sync_parent(&self.path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The header and every whole event line of a log file.
fn read(file: File) -> Option<Recovered> {
    let mut lines = BufReader::new(file).lines();
    let header: Header = serde_json::from_str(&lines.next()?.ok()?).ok()?;
    let events = lines
        .map_while(Result::ok)
        .map_while(|l| serde_json::from_str::<Event>(&l).ok())
        .collect();
    Some(Recovered {
        batch_id: header.batch_id,
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    fn event(i: i64) -> Event {
        serde_json::from_value(serde_json::json!({
            "timestamp": 1_795_860_000_000i64 + i, "user_id": format!("u{i}"), "feature": "f"
        }))
        .unwrap()
    }

    #[test]
    fn what_was_logged_comes_back_after_a_crash_and_a_torn_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, left) = Wal::open(dir.path()).unwrap();
        assert_eq!(left, None);
        wal.append("b-1", &[event(1), event(2)]).unwrap();
        wal.append("b-1", &[event(3)]).unwrap();
        drop(wal); // a crash
        OpenOptions::new()
            .append(true)
            .open(dir.path().join(FILE))
            .unwrap()
            .write_all(b"{\"timestamp\": 17958")
            .unwrap();
        let (mut wal, left) = Wal::open(dir.path()).unwrap();
        assert_eq!(
            left,
            Some(Recovered {
                batch_id: "b-1".into(),
                events: vec![event(1), event(2), event(3)],
            })
        );
        // A new batch starts the file over; clearing empties it.
        wal.append("b-2", &[event(4)]).unwrap();
        let (_, left) = Wal::open(dir.path()).unwrap();
        assert_eq!(left.unwrap().events, vec![event(4)]);
        wal.clear().unwrap();
        assert_eq!(Wal::open(dir.path()).unwrap().1, None);
    }
}
