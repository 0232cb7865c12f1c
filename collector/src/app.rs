//! The collector's state and its reload: storage, profiles, and the live part of the config
//! (tokens, limits). Start-up is the first reload: validate everything, then swap it in.

use std::path::Path;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use tda_daemon::ConfigStatus;
use tda_schema::config::{read_secrets, CollectorConfig, ConfigError, LimitsConfig};
use tda_schema::Timestamp;
use tokio::sync::Semaphore;

use crate::auth::{Credentials, RateLimits, Scope, Tokens};
use crate::profiles::{Profiles, ReloadReport};
use crate::store::Storage;

/// Subdirectories of `<data_dir>/analytics/`, as the seed lays them out.
pub const LAYOUT: [&str; 5] = ["profiles", "metrics", "models", "data", "reports"];

/// Reads tokens from a file and a comma-separated environment variable.
fn tokens_from(file: Option<&Path>, env: &str) -> Result<Tokens, ConfigError> {
    let mut tokens = match file {
        Some(f) => read_secrets(f)?,
        None => Vec::new(),
    };
    if let Ok(v) = std::env::var(env) {
        tokens.extend(v.split(',').map(|t| t.trim().to_string()));
    }
    Ok(Tokens::new(tokens))
}

/// The part of the config that is swapped as a whole on reload.
pub struct Live {
    /// The config in force (settings that need a restart keep their start-up values).
    pub config: CollectorConfig,
    /// The tokens of every scope.
    pub credentials: Arc<Credentials>,
    /// TLS for the next connection, from the files `[tls]` names (none: plain HTTP).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Live {
    /// Validates a config and reads its tokens.
    pub fn load(config_file: &Path) -> Result<Live, ConfigError> {
        let config = CollectorConfig::load(config_file)?;
        let ingest = tokens_from(
            config.auth.ingest_tokens_file.as_deref(),
            "TDA_INGEST_TOKENS",
        )?;
        if ingest.is_empty() {
            return Err(ConfigError::new(config_file, "auth.ingest_tokens_file: no ingest token configured (set the file or TDA_INGEST_TOKENS); agents could not send batches"));
        }
        let admin = tokens_from(config.auth.admin_tokens_file.as_deref(), "TDA_ADMIN_TOKENS")?;
        let read = tokens_from(config.auth.read_tokens_file.as_deref(), "TDA_READ_TOKENS")?;
        let tls = match &config.tls {
            Some(t) => Some(
                tda_daemon::tls::server_config(
                    &t.cert_file,
                    &t.key_file,
                    t.client_ca_file.as_deref(),
                )
                .map_err(|e| ConfigError::new(config_file, format!("tls: {e}")))?,
            ),
            None => None,
        };
        Ok(Live {
            tls,
            config,
            credentials: Arc::new(Credentials {
                ingest,
                admin,
                read,
            }),
        })
    }
}

/// What a reload did, for the log and `POST /-/reload`.
#[derive(Debug, Clone, Serialize)]
pub struct Reloaded {
    /// The config file's status after the reload.
    pub config: ConfigStatus,
    /// What changed among the profiles.
    pub profiles: ReloadReport,
}

/// Everything the routes share.
pub struct App {
    /// Where batches go and stats come from.
    pub store: Arc<dyn Storage>,
    /// Permits for batches being stored at once (`limits.max_inflight_batches`).
    pub writes: Arc<Semaphore>,
    /// Intake counters.
    pub ingest: crate::ingest::IngestCounters,
    /// Histograms and gauges for `/metrics`.
    pub observed: crate::metrics::Observed,
    /// The listener's connection counters.
    pub connections: Arc<tda_daemon::http::ServerCounters>,
    /// Profiles in force.
    pub profiles: Profiles,
    /// Model state (`analytics/models/`).
    pub models: crate::model_state::ModelStore,
    /// Alert state, groups, outbox and silences (`analytics/alerts/`).
    pub alerts: crate::alert::Alerting,
    /// Whether this collector runs the scheduled work (several may share a store).
    pub fleet: crate::fleet::Fleet,
    /// Per-token request buckets (`limits.requests_per_second_per_token`).
    pub rates: RateLimits,
    /// Feature names seen per hour, for `limits.max_features_per_hour`.
    pub features: crate::cardinality::FeatureGuard,
    /// The dashboard's live snapshot (refreshed while someone watches).
    pub live_snapshot: tokio::sync::watch::Sender<Option<Arc<serde_json::Value>>>,
    /// Set when the collector begins to stop (ends live streams).
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// The main loops the systemd watchdog watches.
    pub progress: Arc<tda_daemon::service::Progress>,
    /// The store's files exceed `storage.max_disk_bytes` (checked by the compaction loop).
    pub disk_full: std::sync::atomic::AtomicBool,
    /// `analytics/reports/` (under `data_dir`, which only a restart changes).
    reports_dir: std::path::PathBuf,
    live: RwLock<Live>,
    status: RwLock<ConfigStatus>,
}

impl App {
    /// Loads and validates the config, creates the data layout, opens storage, loads profiles.
    pub fn start(config_file: &Path) -> anyhow::Result<App> {
        use anyhow::Context;
        let live = Live::load(config_file)?;
        let analytics = live.config.analytics_dir();
        for dir in LAYOUT {
            let path = analytics.join(dir);
            std::fs::create_dir_all(&path)
                .with_context(|| format!("creating {}", path.display()))?;
        }
        let store = crate::store::open(&live.config).with_context(|| {
            match live.config.storage.backend {
                tda_schema::config::Backend::Sled => {
                    format!("opening storage under {}", analytics.display())
                }
                tda_schema::config::Backend::Clickhouse => "opening storage".to_string(),
            }
        })?;
        let models = crate::model_state::ModelStore::open(&analytics.join("models").join("state"))
            .with_context(|| format!("opening model state under {}", analytics.display()))?;
        let alerts = crate::alert::Alerting::open(&analytics.join("alerts"))
            .with_context(|| format!("opening alert state under {}", analytics.display()))?;
        let profiles_dir = live.config.profiles_dir();
        let profiles = Profiles::load(&profiles_dir)
            .with_context(|| format!("profiles directory {}", profiles_dir.display()))?;
        let status = ConfigStatus {
            file: config_file.to_path_buf(),
            loaded_at: Timestamp::now().to_rfc3339(),
            ..ConfigStatus::default()
        };
        let writes = Arc::new(Semaphore::new(live.config.limits.max_inflight_batches));
        let fleet = crate::fleet::Fleet::new(
            store.shared().is_some(),
            live.config.storage.clickhouse.lease_ttl.0,
        );
        Ok(App {
            fleet,
            rates: Default::default(),
            features: Default::default(),
            store,
            writes,
            ingest: Default::default(),
            observed: Default::default(),
            connections: Default::default(),
            profiles,
            disk_full: Default::default(),
            models,
            alerts,
            live_snapshot: tokio::sync::watch::Sender::new(None),
            stopping: tokio::sync::watch::Sender::new(false),
            progress: Arc::default(),
            reports_dir: analytics.join("reports"),
            live: RwLock::new(live),
            status: RwLock::new(status),
        })
    }

    /// The TLS settings in force for the next connection.
    pub fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .tls
            .clone()
    }

    /// The config in force.
    pub fn config(&self) -> CollectorConfig {
        self.live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .config
            .clone()
    }

    /// Checks the request's credential for `scope` (see [`Credentials::authorize`]).
    pub fn authorize<B>(
        &self,
        req: &hyper::Request<B>,
        scope: Scope,
    ) -> Result<(), tda_daemon::Refusal> {
        let live = self.live.read().unwrap_or_else(|p| p.into_inner());
        live.credentials
            .authorize(req, scope, (&self.rates, &live.config.limits))
    }

    /// The fleet's handover of this collector's state (see [`crate::fleet::Sharing`]).
    pub fn sharing(&self) -> crate::fleet::Sharing<'_> {
        crate::fleet::Sharing {
            fleet: &self.fleet,
            state: self.store.shared().unwrap_or(&crate::store::NotShared),
            alerts: &self.alerts.store,
            models: &self.models,
            reports: self.reports_dir.clone(),
        }
    }

    /// The reports of the profiles, made from this collector's store (see
    /// [`crate::report::Reports`]).
    pub fn reports(&self) -> crate::report::Reports<'_> {
        let live = self.live.read().unwrap_or_else(|p| p.into_inner());
        crate::report::Reports {
            store: &*self.store,
            sharing: self.sharing(),
            root: self.reports_dir.clone(),
            external_url: live.config.alerting.external_url.clone(),
        }
    }

    /// Request limits in force.
    pub fn limits(&self) -> LimitsConfig {
        self.live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .config
            .limits
            .clone()
    }

    /// The config file's status.
    pub fn config_status(&self) -> ConfigStatus {
        self.status
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reloads the config file, then the profiles. A config that fails keeps the one in force;
    /// settings that need a restart are named and left as they are; the rest applies.
    pub fn reload(&self) -> Reloaded {
        self.reload_config();
        let profiles = self.profiles.reload();
        let config = self.config_status();
        tracing::info!(changed = ?profiles.changed, removed = ?profiles.removed, errors = profiles.errors.len(),
            config_error = config.last_error.is_some(), "reloaded");
        Reloaded { config, profiles }
    }

    fn reload_config(&self) {
        let file = self.config_status().file;
        let mut status = self.status.write().unwrap_or_else(|p| p.into_inner());
        let mut new = match Live::load(&file) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "config not reloaded; the one in force stays");
                status.last_error = Some(e.to_string());
                return;
            }
        };
        let mut live = self.live.write().unwrap_or_else(|p| p.into_inner());
        let restart = restart_needed(&live.config, &new.config);
        for field in &restart {
            tracing::warn!(setting = %field, "changed in the config file; takes effect after a restart");
        }
        keep_restart_settings(&live.config, &mut new.config);
        *live = new;
        *status = ConfigStatus {
            file,
            last_error: None,
            restart_needed: restart,
            loaded_at: Timestamp::now().to_rfc3339(),
        };
    }
}

/// Names of the settings that differ and cannot change while the collector runs.
pub fn restart_needed(running: &CollectorConfig, edited: &CollectorConfig) -> Vec<String> {
    let mut fields = Vec::new();
    if running.listen != edited.listen {
        fields.push("listen".to_string());
    }
    if running.data_dir != edited.data_dir {
        fields.push("data_dir".to_string());
    }
    if running.profiles_dir() != edited.profiles_dir() {
        fields.push("profiles_dir".to_string());
    }
    if running.reload != edited.reload {
        fields.push("reload".to_string());
    }
    if running.retention != edited.retention {
        fields.push("retention".to_string());
    }
    if running.storage.backend != edited.storage.backend
        || running.storage.clickhouse != edited.storage.clickhouse
    {
        fields.push("storage.backend".to_string());
    }
    if running.storage.compact_every != edited.storage.compact_every {
        fields.push("storage.compact_every".to_string());
    }
    if running.limits.max_inflight_batches != edited.limits.max_inflight_batches {
        fields.push("limits.max_inflight_batches".to_string());
    }
    if running.limits.max_connections != edited.limits.max_connections {
        fields.push("limits.max_connections".to_string());
    }
    fields
}

fn keep_restart_settings(running: &CollectorConfig, edited: &mut CollectorConfig) {
    edited.listen = running.listen;
    edited.data_dir = running.data_dir.clone();
    edited.profiles_dir = Some(running.profiles_dir());
    edited.reload = running.reload.clone();
    edited.retention = running.retention.clone();
    edited.storage.compact_every = running.storage.compact_every;
    edited.storage.backend = running.storage.backend;
    edited.storage.clickhouse = running.storage.clickhouse.clone();
    edited.limits.max_inflight_batches = running.limits.max_inflight_batches;
    edited.limits.max_connections = running.limits.max_connections;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, listen: &str, max_body_bytes: u64) -> String {
        format!(
            "listen = \"{listen}\"\ndata_dir = \"{data}\"\n\n[auth]\ningest_tokens_file = \"{tokens}\"\n\n[limits]\nmax_body_bytes = {max_body_bytes}\n",
            data = dir.join("data").display(),
            tokens = dir.join("tokens").display(),
        )
    }

    #[test]
    fn a_reload_applies_live_settings_names_restart_ones_and_keeps_the_config_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("collector.toml");
        std::fs::write(dir.path().join("tokens"), "agent-token\n").unwrap();
        std::fs::write(&file, config(dir.path(), "127.0.0.1:7700", 1_000_000)).unwrap();
        let app = App::start(&file).unwrap();
        assert!(
            dir.path().join("data/analytics/reports").is_dir(),
            "the layout is made"
        );

        std::fs::write(&file, config(dir.path(), "127.0.0.1:7701", 2_000_000)).unwrap();
        let done = app.reload();
        assert_eq!(done.config.restart_needed, ["listen"]);
        assert_eq!(done.config.last_error, None);
        assert_eq!(
            app.config().listen.to_string(),
            "127.0.0.1:7700",
            "kept until a restart"
        );
        assert_eq!(app.limits().max_body_bytes, 2_000_000, "applied at once");

        std::fs::write(&file, "listen = [broken").unwrap();
        let failed = app.reload();
        let why = failed.config.last_error.expect("the error is reported");
        assert!(why.contains("collector.toml"), "{why}");
        assert_eq!(
            app.limits().max_body_bytes,
            2_000_000,
            "the config in force stays"
        );
    }
}
