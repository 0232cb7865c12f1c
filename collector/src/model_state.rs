//! Model state persisted under `analytics/models/` (a sled database): per predictive profile, when
//! its models last ran and what they found, and per metric the streaming anomaly detector with
//! the anomalies it flagged. Every value starts with a format version byte.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tda_models::anomaly::Detector;

use crate::predictive::Anomaly;
use crate::store::StoreError;

/// Format version of a persisted profile state.
pub const VERSION: u8 = 1;
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
