//! Alerting state under `analytics/alerts/` (a sled database): each rule's alert, each
//! notification group's timing, the outbox of notifications not yet delivered, and silences.
//! Every value starts with a format version byte; a change is written before it is acted on.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::rule::AlertState;
use crate::store::StoreError;

/// Format version of every value here.
pub const VERSION: u8 = 1;

/// One rule's alert as kept between evaluations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct StoredAlert {
    /// Profile id.
    pub profile: String,
    /// Rule name.
    pub rule: String,
    /// Hash of the rule's definition; a changed rule starts over.
    pub definition: String,
    /// State machine.
    pub state: AlertState,
    /// Labels (rule labels, `alertname`, `profile`, `metric`).
    pub labels: BTreeMap<String, String>,
    /// Annotations, rendered at the last change.
    pub annotations: BTreeMap<String, String>,
    /// Whether the last resolution was notified (or needs none).
    pub resolution_notified: bool,
    /// Why the rule could not be evaluated, if it could not.
    pub error: Option<String>,
}

/// A notification group's timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct GroupState {
    /// When an alert of the group was first seen, epoch ms.
    pub first_seen: i64,
    /// When the group was last notified, epoch ms (none yet: `None`).
    pub last_sent: Option<i64>,
    /// Hash of the alerts (and their statuses) last notified.
    pub last_hash: String,
    /// Notifications made for the group (part of each dedup key).
    pub sequence: u64,
}

/// A notification waiting to be delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outgoing {
    /// Receiver name (for logs).
    pub receiver: String,
    /// Where it goes.
    pub url: String,
    /// The request body.
    pub body: String,
    /// Extra headers (content type, signature, dedup key).
    pub headers: Vec<(String, String)>,
    /// Longest wait for an answer, ms.
    pub timeout_ms: u64,
    /// Stable across retries: receivers may drop repeats.
    pub dedup_key: String,
    /// Attempts made.
    pub attempts: u32,
    /// Not before this time, epoch ms.
    pub next_attempt: i64,
    /// When it was queued, epoch ms.
    pub created_at: i64,
}

pub use tda_schema::answers::Silence;

/// The alerting database.
pub struct AlertStore {
    db: sled::Db,
    alerts: sled::Tree,
    groups: sled::Tree,
    outbox: sled::Tree,
    silences: sled::Tree,
    /// Held while an outbox id is chosen and used (or the outbox replaced).
    ids: std::sync::Mutex<()>,
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = vec![VERSION];
    out.extend(serde_json::to_vec(v).unwrap_or_default());
    out
}

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    let name = || format!("alerts/{}", String::from_utf8_lossy(key));
    match bytes.first() {
        Some(&VERSION) => serde_json::from_slice(&bytes[1..]).map_err(|e| StoreError::Corrupt {
            key: name(),
            message: e.to_string(),
        }),
        Some(&v) => Err(StoreError::Version {
            key: name(),
            version: v,
            expected: VERSION,
        }),
        None => Err(StoreError::Corrupt {
            key: name(),
            message: "empty".into(),
        }),
    }
}

fn all<T: DeserializeOwned>(tree: &sled::Tree) -> Result<Vec<(Vec<u8>, T)>, StoreError> {
    tree.iter()
        .map(|item| {
            let (k, v) = item?;
            Ok((k.to_vec(), decode(&k, &v)?))
        })
        .collect()
}

/// The key of a rule's alert.
pub fn alert_key(profile: &str, rule: &str) -> Vec<u8> {
    format!("{profile}\0{rule}").into_bytes()
}

/// What one notification pass changes, written at once.
#[derive(Debug, Default)]
pub struct Sent {
    /// The group's new timing (`None`: forget the group).
    pub group: (String, Option<GroupState>),
    /// Alerts whose resolution is now notified.
    pub resolved: Vec<StoredAlert>,
    /// The notification (`None`: nothing to send, only state to record).
    pub outgoing: Option<Outgoing>,
}

impl AlertStore {
    /// Opens (creating) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::open(dir)?;
        Ok(AlertStore {
            alerts: db.open_tree("alerts")?,
            groups: db.open_tree("groups")?,
            outbox: db.open_tree("outbox")?,
            silences: db.open_tree("silences")?,
            ids: std::sync::Mutex::new(()),
            db,
        })
    }

    /// Every rule's alert.
    pub fn alerts(&self) -> Result<Vec<StoredAlert>, StoreError> {
        Ok(all(&self.alerts)?.into_iter().map(|(_, a)| a).collect())
    }

    /// Writes a rule's alert durably.
    pub fn put_alert(&self, a: &StoredAlert) -> Result<(), StoreError> {
        self.put_alerts(std::slice::from_ref(a))
    }

    /// Writes several alerts, then makes them durable with one flush.
    pub fn put_alerts(&self, alerts: &[StoredAlert]) -> Result<(), StoreError> {
        for a in alerts {
            self.alerts
                .insert(alert_key(&a.profile, &a.rule), encode(a))?;
        }
        if !alerts.is_empty() {
            self.db.flush()?;
        }
        Ok(())
    }

    /// Forgets a rule's alert.
    pub fn remove_alert(&self, profile: &str, rule: &str) -> Result<(), StoreError> {
        self.alerts.remove(alert_key(profile, rule))?;
        self.db.flush()?;
        Ok(())
    }

    /// Every group's timing, by group key.
    pub fn groups(&self) -> Result<BTreeMap<String, GroupState>, StoreError> {
        Ok(all(&self.groups)?
            .into_iter()
            .map(|(k, g)| (String::from_utf8_lossy(&k).into_owned(), g))
            .collect())
    }

    /// Records a notification pass of one group in one transaction: its timing, the alerts
    /// whose resolution it carries, and the notification queued in the outbox.
    pub fn record(&self, sent: &Sent) -> Result<(), StoreError> {
        let _ids = self.ids.lock();
        let id = self.outbox_id()?;
        let result: Result<(), TransactionError<()>> = (&self.groups, &self.alerts, &self.outbox)
            .transaction(|(groups, alerts, outbox)| {
                let (key, group) = &sent.group;
                match group {
                    Some(g) => groups.insert(key.as_bytes(), encode(g))?,
                    None => groups.remove(key.as_bytes())?,
                };
                for a in &sent.resolved {
                    alerts.insert(alert_key(&a.profile, &a.rule), encode(a))?;
                }
                if let Some(o) = &sent.outgoing {
                    outbox.insert(&id.to_be_bytes(), encode(o))?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        result.map_err(|e| match e {
            TransactionError::Storage(e) => StoreError::Sled(e),
            TransactionError::Abort(()) => StoreError::Corrupt {
                key: "alerts".into(),
                message: "transaction aborted".into(),
            },
        })?;
        self.db.flush()?;
        Ok(())
    }

    /// Queues a notification on its own (a report's announcement).
    pub fn enqueue(&self, o: &Outgoing) -> Result<(), StoreError> {
        let _ids = self.ids.lock();
        let id = self.outbox_id()?;
        self.outbox.insert(id.to_be_bytes(), encode(o))?;
        self.db.flush()?;
        Ok(())
    }

    /// Notifications waiting, oldest first, with their ids.
    pub fn outbox(&self) -> Result<Vec<(u64, Outgoing)>, StoreError> {
        Ok(all(&self.outbox)?
            .into_iter()
            .map(|(k, o)| {
                let id = u64::from_be_bytes(k.try_into().unwrap_or([0; 8]));
                (id, o)
            })
            .collect())
    }

    /// Updates (after a failed attempt) or removes (`None`: delivered or given up) a notification.
    pub fn settle(&self, id: u64, retry: Option<&Outgoing>) -> Result<(), StoreError> {
        match retry {
            Some(o) => self.outbox.insert(id.to_be_bytes(), encode(o))?,
            None => self.outbox.remove(id.to_be_bytes())?,
        };
        self.db.flush()?;
        Ok(())
    }

    /// Every silence.
    pub fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        Ok(all(&self.silences)?.into_iter().map(|(_, s)| s).collect())
    }

    /// Writes a silence.
    pub fn put_silence(&self, s: &Silence) -> Result<(), StoreError> {
        self.silences.insert(s.id.as_bytes(), encode(s))?;
        self.db.flush()?;
        Ok(())
    }

    /// The alerts, group timings and outbox as one text (silences travel one by one).
    pub fn export(&self) -> Result<String, StoreError> {
        crate::snapshot::export(&self.handed_over())
    }

    /// Replaces the alerts, group timings and outbox with an [`AlertStore::export`].
    pub fn import(&self, text: &str) -> Result<(), StoreError> {
        let _ids = self.ids.lock();
        crate::snapshot::import(&self.handed_over(), text)
    }

    fn handed_over(&self) -> [(&'static str, &sled::Tree); 3] {
        [
            ("alerts", &self.alerts),
            ("groups", &self.groups),
            ("outbox", &self.outbox),
        ]
    }

    /// An outbox id after every one queued, also those another collector queued.
    fn outbox_id(&self) -> Result<u64, StoreError> {
        let generated = self.db.generate_id()?;
        let last = self.outbox.last()?.map_or(0, |(k, _)| {
            u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8]))
        });
        Ok(generated.max(last + 1))
    }

    /// A new id for a silence.
    pub fn new_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }
}
