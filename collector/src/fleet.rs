//! Several collectors on one shared store: the lease that picks the one collector running the
//! scheduled work (models, reports, alert evaluation and delivery, retention, compaction), and
//! the handover of that work's state through the store, so the collector that takes the lease
//! goes on where the last holder stopped and every collector serves the same alerts, model
//! results and reports. On a store that is not shared (sled) the collector always leads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tda_schema::timestamp::now_ms;

use crate::alert::store::{AlertStore, Silence};
use crate::model_state::ModelStore;
use crate::store::{SharedState, StoreError};

/// The lease's name in the store.
const LEASE: &str = "scheduled-work";
/// Scope of the alerting snapshot.
const ALERTING: &str = "alerting";
/// Scope of the model-state snapshot.
const MODELS: &str = "models";
/// Scope prefix of each silence.
const SILENCE: &str = "silence/";
/// Scope prefix of each report file (then its path under `analytics/reports/`).
const REPORT: &str = "report/";

/// This collector's place in the fleet.
pub struct Fleet {
    /// Whether the store is shared (else this collector always leads).
    shared: bool,
    /// This collector's name in the lease: host, pid and start time.
    holder: String,
    /// How long a renewal holds the lease.
    ttl_ms: i64,
    /// The lease is ours until then (epoch ms; 0: not ours).
    until_ms: AtomicI64,
    /// Per scope, the version imported or the hash published last.
    seen: Mutex<HashMap<String, u64>>,
}

impl Fleet {
    /// The fleet state of a collector on a store that is `shared` or not.
    pub fn new(shared: bool, ttl: Duration) -> Fleet {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "collector".into());
        Fleet {
            shared,
            holder: format!("{host}/{}/{}", std::process::id(), now_ms()),
            ttl_ms: ttl.as_millis().max(1_000) as i64,
            until_ms: AtomicI64::new(0),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this collector runs the scheduled work now: it holds the lease with a fifth of
    /// its time to spare (so it stops before anyone else may start).
    pub fn leads(&self) -> bool {
        !self.shared || now_ms() < self.until_ms.load(Ordering::SeqCst) - self.ttl_ms / 5
    }

    /// Whether the store is shared with other collectors.
    pub fn shared(&self) -> bool {
        self.shared
    }

    /// How often the lease is renewed (or claimed): a third of its time to live.
    pub fn renew_every(&self) -> Duration {
        Duration::from_millis(self.ttl_ms as u64 / 3)
    }

    /// This collector's name in the lease.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Whether `scope`'s version in the store changed since it was last imported.
    fn new_version(&self, scope: &str, version: u64) -> bool {
        self.mark(format!("v:{scope}"), version)
    }

    /// Whether `scope`'s content (by hash) changed since it was last shared or imported.
    fn new_content(&self, scope: &str, text: &str) -> bool {
        self.mark(format!("h:{scope}"), hash(text))
    }

    fn mark(&self, key: String, mark: u64) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.insert(key, mark) != Some(mark)
    }

    fn forget(&self, scope: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.remove(&format!("h:{scope}"));
    }
}

/// What the fleet's handover reads and writes: this collector's place in the fleet, the
/// store's shared state, and the local state handed over (alerting, models, report files).
pub struct Sharing<'a> {
    /// This collector's place in the fleet.
    pub fleet: &'a Fleet,
    /// The store's shared state ([`crate::store::NotShared`] on a store that is one collector's own).
    pub state: &'a dyn SharedState,
    /// Alert state, silences and outbox.
    pub alerts: &'a AlertStore,
    /// Model state.
    pub models: &'a ModelStore,
    /// `analytics/reports/`.
    pub reports: PathBuf,
}

impl Sharing<'_> {
    /// One round: renew or claim the lease; a collector that takes it first restores the state
    /// the last holder shared; one that does not hold it mirrors that state.
    pub fn keep(&self) {
        let f = self.fleet;
        let now = now_ms();
        let leading = f.leads();
        match self.state.hold_lease(LEASE, &f.holder, now, f.ttl_ms) {
            Ok(true) if leading => {
                f.until_ms.store(now + f.ttl_ms, Ordering::SeqCst);
                // Silences and reports made on other collectors.
                if let Err(e) = self.restore(false) {
                    tracing::warn!(error = %e, "shared silences and reports could not be read; will try again");
                }
            }
            Ok(true) => match self.restore(true) {
                Ok(()) => {
                    f.until_ms.store(now + f.ttl_ms, Ordering::SeqCst);
                    tracing::info!(holder = %f.holder, "this collector now runs the scheduled work");
                }
                Err(e) => {
                    tracing::error!(error = %e, "lease taken but the shared state could not be restored; not leading")
                }
            },
            Ok(false) => {
                if leading {
                    tracing::warn!(holder = %f.holder, "lease lost; scheduled work stops here");
                }
                f.until_ms.store(0, Ordering::SeqCst);
                if let Err(e) = self.restore(false) {
                    tracing::warn!(error = %e, "shared state could not be mirrored; will try again");
                }
            }
            Err(e) => tracing::warn!(error = %e, "lease could not be renewed; will try again"),
        }
    }
    /// Brings the local alerting and model state (when `all`, or when not leading), silences and
    /// reports up to the shared versions.
    fn restore(&self, all: bool) -> Result<(), StoreError> {
        let f = self.fleet;
        if all || !f.leads() {
            for scope in [ALERTING, MODELS] {
                let Some((version, text)) = self.state.get_state(scope)? else {
                    continue;
                };
                if f.new_version(scope, version) || all {
                    match scope {
                        ALERTING => self.alerts.import(&text)?,
                        _ => self.models.import(&text)?,
                    }
                    f.new_content(scope, &text);
                }
            }
        }
        for (scope, version) in self.state.state_scopes(SILENCE)? {
            if f.new_version(&scope, version) {
                if let Some((_, text)) = self.state.get_state(&scope)? {
                    let s: Silence = serde_json::from_str(&text).map_err(|e| corrupt(&scope, e))?;
                    self.alerts.put_silence(&s)?;
                }
            }
        }
        self.restore_reports()
    }
    /// Writes the shared report files this collector lacks.
    fn restore_reports(&self) -> Result<(), StoreError> {
        let root = &self.reports;
        for (scope, _) in self.state.state_scopes(REPORT)? {
            let Some(path) = report_path(root, &scope) else {
                continue;
            };
            if path.exists() {
                continue;
            }
            if let Some((_, body)) = self.state.get_state(&scope)? {
                let dir = path.parent().unwrap_or(root);
                std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
                tda_daemon::durable::write_atomic(&path, body.as_bytes())
                    .map_err(|e| io(&path, e))?;
            }
        }
        Ok(())
    }
    /// Shares the leader's state of `work` when it changed since it was last shared.
    pub fn publish(&self, work: Work) {
        let f = self.fleet;
        if !f.shared || !f.leads() {
            return;
        }
        let exports = match work {
            Work::Alerting => [(ALERTING, self.alerts.export())],
            Work::Models => [(MODELS, self.models.export())],
        };
        for (scope, text) in exports {
            let done = text.and_then(|t| {
                if f.new_content(scope, &t) {
                    self.state.put_state(scope, Some(&t))?;
                }
                Ok(())
            });
            if let Err(e) = done {
                f.forget(scope);
                tracing::warn!(scope, error = %e, "shared state could not be written; will try again");
            }
        }
    }
    /// Writes a silence here and, on a shared store, for every collector.
    pub fn save_silence(&self, s: &Silence) -> Result<(), StoreError> {
        self.alerts.put_silence(s)?;
        if self.fleet.shared {
            let text = serde_json::to_string(s).map_err(|e| corrupt(SILENCE, e))?;
            let scope = format!("{SILENCE}{}", s.id);
            blocking(|| self.state.put_state(&scope, Some(&text)))?;
        }
        Ok(())
    }
    /// Shares a report file just written (`Some`) or deleted (`None`) under `analytics/reports/`.
    pub fn share_report(&self, path: &Path, body: Option<&str>) {
        if !self.fleet.shared {
            return;
        }
        let Ok(rel) = path.strip_prefix(&self.reports) else {
            return;
        };
        let scope = format!("{REPORT}{}", rel.display());
        if let Err(e) = blocking(|| self.state.put_state(&scope, body)) {
            tracing::warn!(scope = %scope, error = %e, "report could not be shared");
        }
    }
}

/// The file a report scope names, refusing any path that leaves the reports directory.
fn report_path(root: &Path, scope: &str) -> Option<PathBuf> {
    let rel = Path::new(scope.strip_prefix(REPORT)?);
    let plain = rel
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    plain.then(|| root.join(rel))
}

fn io(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn corrupt(scope: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: format!("shared state {scope}"),
        message: e.to_string(),
    }
}

fn hash(text: &str) -> u64 {
    crate::sketch::distinct::hash(text)
}

/// What the leader shares after a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Alert state, group timings and the outbox.
    Alerting,
    /// Model state (predictive streams and results, behavioral runs).
    Models,
}

/// Runs `f`, which may block on the store's server, where blocking is allowed: at once on a
/// blocking thread, else (a request handler on the runtime) with the runtime told first.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
