//! Model state persisted under `analytics/models/` (a sled database): per predictive profile, when
//! its models last ran and what they found, and per metric the streaming anomaly detector with
//! the anomalies it flagged. Every value starts with a format version byte.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tda_models::anomaly::Detector;

use crate::predictive::Anomaly;
use crate::store::StoreError;

/// Format version of a persisted profile state (2: the novelty detector; the state of version 1's
/// detector is not carried over: its streams relearn from the stored history).
pub const VERSION: u8 = 2;
/// Flags kept per metric (oldest dropped first).
pub const MAX_FLAGS: usize = 200;

/// One metric's streaming detector.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stream {
    /// The detector, fed one closed step at a time; made when the first steps arrive, sized to
    /// the history they bring.
    pub detector: Option<Detector>,
    /// Start of the next step to score, epoch ms.
    pub next_ms: i64,
    /// Step width, ms (a changed aggregation level restarts the stream).
    pub step_ms: i64,
    /// Anomalies flagged, oldest first.
    pub flags: Vec<Anomaly>,
}

/// What the scheduler keeps for one predictive profile.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProfileState {
    /// When the models last ran, epoch ms (0: never).
    pub last_run_ms: i64,
    /// What they answered (the predictive stats).
    pub result: Option<serde_json::Value>,
    /// Content hash of the profile version they ran for (a changed profile reruns at once).
    pub profile_hash: String,
    /// Streaming detectors by metric.
    pub streams: BTreeMap<String, Stream>,
}

/// The model state database.
pub struct ModelStore {
    tree: sled::Tree,
    db: sled::Db,
}

impl ModelStore {
    /// Opens (creating) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::open(dir)?;
        Ok(ModelStore {
            tree: db.open_tree("profiles")?,
            db,
        })
    }

    /// The state of a profile (default when none was saved).
    pub fn load(&self, profile: &str) -> Result<ProfileState, StoreError> {
        let Some(bytes) = self.tree.get(profile)? else {
            return Ok(ProfileState::default());
        };
        let corrupt = |message: String| StoreError::Corrupt {
            key: format!("models/{profile}"),
            message,
        };
        match bytes.first() {
            Some(&VERSION) => {
                serde_json::from_slice(&bytes[1..]).map_err(|e| corrupt(e.to_string()))
            }
            Some(&v) if v < VERSION => {
                tracing::info!(%profile, version = v, "model state of an older format: the models relearn from stored history");
                Ok(ProfileState::default())
            }
            Some(&v) => Err(StoreError::Version {
                key: format!("models/{profile}"),
                version: v,
                expected: VERSION,
            }),
            None => Err(corrupt("empty".into())),
        }
    }

    /// Every profile's state as one text.
    pub fn export(&self) -> Result<String, StoreError> {
        crate::snapshot::export(&[("profiles", &self.tree)])
    }

    /// Replaces every profile's state with a [`ModelStore::export`].
    pub fn import(&self, text: &str) -> Result<(), StoreError> {
        crate::snapshot::import(&[("profiles", &self.tree)], text)
    }

    /// Saves a profile's state durably.
    pub fn save(&self, profile: &str, state: &ProfileState) -> Result<(), StoreError> {
        let mut bytes = vec![VERSION];
        bytes.extend(serde_json::to_vec(state).unwrap_or_default());
        self.tree.insert(profile, bytes)?;
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_formats_relearn_and_newer_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::open(dir.path()).unwrap();
        let mut state = ProfileState {
            last_run_ms: 42,
            ..ProfileState::default()
        };
        state.profile_hash = "h".into();
        store.save("p", &state).unwrap();
        let loaded = store.load("p").unwrap();
        assert_eq!(
            (loaded.last_run_ms, loaded.profile_hash.as_str()),
            (42, "h")
        );
        let mut old = vec![1u8];
        old.extend(br#"{"last_run_ms":7,"result":null,"profile_hash":"x","streams":{"requests":{"detector":{"window":300},"next_ms":0,"step_ms":60000,"flags":[]}}}"#);
        store.tree.insert("old", old).unwrap();
        let relearnt = store.load("old").unwrap();
        assert_eq!(relearnt.last_run_ms, 0);
        assert!(relearnt.streams.is_empty());
        store
            .tree
            .insert("new", vec![VERSION + 1, b'{', b'}'])
            .unwrap();
        assert!(matches!(
            store.load("new"),
            Err(StoreError::Version { version, .. }) if version == VERSION + 1
        ));
    }
}
