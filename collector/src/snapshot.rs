//! A set of sled trees as one text and back: how a collector hands its scheduled work's state
//! (alerting, models) to the next through a shared store.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::store::StoreError;

/// Format version of a snapshot.
pub const VERSION: u8 = 1;

#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u8,
    /// Per tree name, its entries as base64 key and value.
    trees: BTreeMap<String, Vec<(String, String)>>,
}

fn corrupt(message: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: "snapshot".into(),
        message: message.to_string(),
    }
}

/// The entries of `trees`, by name.
pub fn export(trees: &[(&str, &sled::Tree)]) -> Result<String, StoreError> {
    let mut snap = Snapshot {
        version: VERSION,
        trees: BTreeMap::new(),
    };
    for (name, tree) in trees {
        let entries = tree
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                Ok((STANDARD.encode(k), STANDARD.encode(v)))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        snap.trees.insert(name.to_string(), entries);
    }
    serde_json::to_string(&snap).map_err(corrupt)
}

/// Makes each of `trees` hold exactly its entries in `text` (a tree the snapshot lacks is
/// emptied); each tree changes in one atomic batch.
pub fn import(trees: &[(&str, &sled::Tree)], text: &str) -> Result<(), StoreError> {
    let snap: Snapshot = serde_json::from_str(text).map_err(corrupt)?;
    if snap.version != VERSION {
        return Err(StoreError::Version {
            key: "snapshot".into(),
            version: snap.version,
            expected: VERSION,
        });
    }
    for (name, tree) in trees {
        let mut batch = sled::Batch::default();
        let mut wanted = BTreeMap::new();
        for (k, v) in snap.trees.get(*name).into_iter().flatten() {
            let k = STANDARD.decode(k).map_err(corrupt)?;
            wanted.insert(k, STANDARD.decode(v).map_err(corrupt)?);
        }
        for key in tree.iter().keys() {
            let key = key?;
            if !wanted.contains_key(key.as_ref()) {
                batch.remove(key);
            }
        }
        for (k, v) in wanted {
            batch.insert(k, v);
        }
        tree.apply_batch(batch)?;
        tree.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_replaces_the_trees_contents() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let (a, b) = (db.open_tree("a").unwrap(), db.open_tree("b").unwrap());
        a.insert(b"k1", b"v1".to_vec()).unwrap();
        a.insert([0u8, 255], b"\x01{}".to_vec()).unwrap();
        let text = export(&[("a", &a), ("b", &b)]).unwrap();
        let other = sled::open(dir.path().join("other")).unwrap();
        let (c, d) = (other.open_tree("a").unwrap(), other.open_tree("b").unwrap());
        c.insert(b"stale", b"x".to_vec()).unwrap();
        d.insert(b"stale", b"y".to_vec()).unwrap();
        import(&[("a", &c), ("b", &d)], &text).unwrap();
        let entries: Vec<_> = c.iter().map(|kv| kv.unwrap()).collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(c.get([0u8, 255]).unwrap().unwrap().as_ref(), b"\x01{}");
        assert_eq!(c.get(b"k1").unwrap().unwrap().as_ref(), b"v1");
        assert!(d.is_empty());
        assert!(import(&[("a", &c)], "{\"version\":9,\"trees\":{}}").is_err());
    }
}
