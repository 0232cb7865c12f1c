//! Block payloads in checksummed files, one per block, in a directory per hour: written and
//! fsynced before the sled index names them, deleted after it stops naming them, so compaction
//! and retention give disk space back at once (sled does not: see BENCHMARKS.md).

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"TDAB";
/// Format version of a segment file.
pub const VERSION: u8 = 1;
/// magic, version, rollup length, block length, rollup CRC, block CRC.
const HEADER: usize = 4 + 1 + 4 + 4 + 4 + 4;

/// The files of one database.
pub struct Segments {
    dir: PathBuf,
}

/// Why a segment file could not be used.
pub type SegmentError = String;

impl Segments {
    /// Segment files under `dir` (created).
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        Ok(Segments {
            dir: dir.to_path_buf(),
        })
    }

    fn hour_dir(&self, hour: i64) -> PathBuf {
        self.dir.join(format!("{hour:010}"))
    }

    /// The file of block `seq` of `hour`.
    pub fn path(&self, hour: i64, seq: u64) -> PathBuf {
        self.hour_dir(hour).join(format!("{seq:016x}.blk"))
    }

    /// Writes a block and its (possibly empty) rollup durably: to a temporary name, fsync,
    /// rename, fsync of the hour's directory.
    pub fn write(&self, hour: i64, seq: u64, rollup: &[u8], block: &[u8]) -> std::io::Result<()> {
        let dir = self.hour_dir(hour);
        fs::create_dir_all(&dir)?;
        let path = self.path(hour, seq);
        let mut head = Vec::with_capacity(HEADER);
        head.extend_from_slice(MAGIC);
        head.push(VERSION);
        head.extend_from_slice(&(rollup.len() as u32).to_le_bytes());
        head.extend_from_slice(&(block.len() as u32).to_le_bytes());
        head.extend_from_slice(&crc32fast::hash(rollup).to_le_bytes());
        head.extend_from_slice(&crc32fast::hash(block).to_le_bytes());
        tda_daemon::durable::write_atomic_parts(&path, &[&head, rollup, block])
    }

    fn header(f: &mut File) -> Result<(u32, u32, u32, u32), SegmentError> {
        let mut head = [0u8; HEADER];
        f.read_exact(&mut head)
            .map_err(|e| format!("header: {e}"))?;
        if &head[..4] != MAGIC {
            return Err("not a segment file".into());
        }
        if head[4] != VERSION {
            return Err(format!(
                "segment format version {}, this build reads {VERSION}",
                head[4]
            ));
        }
        let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        Ok((word(5), word(9), word(13), word(17)))
    }

    fn open_file(&self, hour: i64, seq: u64) -> Result<File, SegmentError> {
        let path = self.path(hour, seq);
        File::open(&path).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Reads a block, checking its checksum.
    pub fn block(&self, hour: i64, seq: u64) -> Result<Vec<u8>, SegmentError> {
        let mut f = self.open_file(hour, seq)?;
        let (rollup_len, block_len, _, crc) = Self::header(&mut f)?;
        f.seek(SeekFrom::Current(i64::from(rollup_len)))
            .map_err(|e| e.to_string())?;
        read_checked(&mut f, block_len, crc)
    }

    /// Reads the rollup stored with a block (empty when it has none), checking its checksum.
    pub fn rollup(&self, hour: i64, seq: u64) -> Result<Vec<u8>, SegmentError> {
        let mut f = self.open_file(hour, seq)?;
        let (rollup_len, _, crc, _) = Self::header(&mut f)?;
        read_checked(&mut f, rollup_len, crc)
    }

    /// Deletes a block's file.
    pub fn remove(&self, hour: i64, seq: u64) {
        let _ = fs::remove_file(self.path(hour, seq));
        let _ = fs::remove_dir(self.hour_dir(hour)); // only if now empty
    }

    /// Every file, as (hour, seq), including ones the index does not name (left by a crash
    /// between writing a file and committing the index, or between an index change and the
    /// delete); unreadable names and temporary files are reported as `None`.
    pub fn list(&self) -> Vec<(PathBuf, Option<(i64, u64)>)> {
        let mut out = Vec::new();
        for hour_dir in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let hour = hour_dir
                .file_name()
                .to_str()
                .and_then(|h| h.parse::<i64>().ok());
            for file in fs::read_dir(hour_dir.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = file.file_name();
                let seq = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(".blk"))
                    .and_then(|n| u64::from_str_radix(n, 16).ok());
                out.push((file.path(), hour.zip(seq)));
            }
        }
        out
    }

    /// Bytes of all files.
    pub fn bytes(&self) -> u64 {
        self.list()
            .iter()
            .filter_map(|(p, _)| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

fn read_checked(f: &mut File, len: u32, crc: u32) -> Result<Vec<u8>, SegmentError> {
    let mut data = vec![0u8; len as usize];
    f.read_exact(&mut data)
        .map_err(|e| format!("truncated: {e}"))?;
    if crc32fast::hash(&data) != crc {
        return Err("checksum mismatch".into());
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let s = Segments::open(dir.path()).unwrap();
        s.write(5, 7, b"roll", b"block-bytes").unwrap();
        s.write(5, 8, b"", b"only-block").unwrap();
        assert_eq!(s.block(5, 7).unwrap(), b"block-bytes");
        assert_eq!(s.rollup(5, 7).unwrap(), b"roll");
        assert_eq!(s.rollup(5, 8).unwrap(), b"");
        let path = s.path(5, 7);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(s.block(5, 7).unwrap_err(), "checksum mismatch");
        fs::write(&path, &bytes[..10]).unwrap();
        assert!(s.block(5, 7).is_err());
        assert!(s.block(6, 1).is_err(), "missing file");
        let mut listed: Vec<_> = s.list().into_iter().map(|(_, id)| id).collect();
        listed.sort();
        assert_eq!(listed, vec![Some((5, 7)), Some((5, 8))]);
        s.remove(5, 7);
        s.remove(5, 8);
        assert!(s.list().is_empty());
        assert!(
            !dir.path().join("0000000005").exists(),
            "empty hour directory removed"
        );
    }
}
