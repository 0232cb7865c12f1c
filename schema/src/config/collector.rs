//! `collector.toml`: the collector's listener, storage, retention, reload, auth, TLS and limits,
//! with defaults and validation.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;

use super::{default_true, load_toml, resolve, ConfigError, ServerTlsConfig};
use crate::duration::HumanDuration;

fn default_collector_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 7300))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/tda")
}
fn default_max_body() -> usize {
    16 << 20
}
fn default_max_decompressed() -> usize {
    64 << 20
}

/// `collector.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// Address the API, dashboard and batch intake listen on.
    #[serde(default = "default_collector_listen")]
    pub listen: SocketAddr,
    /// State directory; data lives under `<data_dir>/analytics/`. Relative paths are relative
    /// to this file.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Profiles directory; `<data_dir>/analytics/profiles` when absent.
    #[serde(default)]
    pub profiles_dir: Option<PathBuf>,
    /// Who may send batches.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Request size limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// TLS on the listener; plain HTTP when absent. Certificate files are read again on reload.
    #[serde(default)]
    pub tls: Option<ServerTlsConfig>,
    /// How profile and config changes are picked up.
    #[serde(default)]
    pub reload: ReloadConfig,
    /// When old data is deleted.
    #[serde(default)]
    pub retention: RetentionConfig,
    /// Compaction and the disk-space cap of the embedded store.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Alert evaluation, receivers, routing and inhibition.
    #[serde(default)]
    pub alerting: crate::alerting::AlertingConfig,
}

fn default_compact_every() -> HumanDuration {
    HumanDuration::secs(300)
}
fn default_compact_after() -> HumanDuration {
    HumanDuration::secs(600)
}

/// Compaction and the disk-space cap of the embedded store.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// How often the blocks that batches left in each past hour are merged into few large ones
    /// (smaller on disk, faster to scan). Takes effect at restart.
    #[serde(default = "default_compact_every")]
    pub compact_every: HumanDuration,
    /// An hour is compacted once it ended this long ago (late batches after that are merged by
    /// a later pass).
    #[serde(default = "default_compact_after")]
    pub compact_after: HumanDuration,
    /// Largest size of the store's files, bytes; 0 for no cap. Above it the collector answers
    /// batches with 507 (agents keep them in their spools and retry) until retention or the
    /// operator frees space; stored data is never deleted early to make room.
    #[serde(default)]
    pub max_disk_bytes: u64,
    /// Where data is stored: the embedded `sled` store under `data_dir`, or `clickhouse`
    /// (`[storage.clickhouse]`). Takes effect at restart.
    #[serde(default)]
    pub backend: Backend,
    /// The ClickHouse server, when `backend = "clickhouse"`.
    #[serde(default)]
    pub clickhouse: ClickHouseSettings,
}

/// A storage backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// The embedded store (nothing to install).
    #[default]
    Sled,
    /// A ClickHouse server (18.16 or later) over its HTTP interface.
    Clickhouse,
}

fn default_clickhouse_url() -> String {
    "http://127.0.0.1:8123".into()
}
fn default_clickhouse_database() -> String {
    "tda".into()
}
fn default_clickhouse_timeout() -> HumanDuration {
    HumanDuration::secs(60)
}

/// `[storage.clickhouse]`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseSettings {
    /// HTTP interface base URL.
    #[serde(default = "default_clickhouse_url")]
    pub url: String,
    /// Database the tables live in (created when missing).
    #[serde(default = "default_clickhouse_database")]
    pub database: String,
    /// User, when not `default`.
    #[serde(default)]
    pub user: Option<String>,
    /// File holding the user's password (one line). Relative to this file.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Longest a query may take.
    #[serde(default = "default_clickhouse_timeout")]
    pub timeout: HumanDuration,
    /// How long the collector running scheduled work (models, reports, alerts, retention) holds
    /// its lease between renewals; when it dies, another takes over within about this long.
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl: HumanDuration,
}

fn default_lease_ttl() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(15))
}

impl Default for ClickHouseSettings {
    fn default() -> Self {
        ClickHouseSettings {
            url: default_clickhouse_url(),
            database: default_clickhouse_database(),
            user: None,
            password_file: None,
            timeout: default_clickhouse_timeout(),
            lease_ttl: default_lease_ttl(),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            compact_every: default_compact_every(),
            compact_after: default_compact_after(),
            max_disk_bytes: 0,
            backend: Backend::Sled,
            clickhouse: ClickHouseSettings::default(),
        }
    }
}

fn default_retention_every() -> HumanDuration {
    HumanDuration::secs(3_600)
}

/// The retention schedule; how long data is kept comes from the profiles' `retention_period`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// How often data older than the longest `retention_period` is deleted (also once at start).
    /// Takes effect at restart.
    #[serde(default = "default_retention_every")]
    pub every: HumanDuration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            every: default_retention_every(),
        }
    }
}

fn default_poll_interval() -> HumanDuration {
    HumanDuration::secs(5)
}
fn default_debounce() -> HumanDuration {
    HumanDuration(std::time::Duration::from_millis(200))
}

/// Live reload of profiles and of this file.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReloadConfig {
    /// How often the profiles directory and this file are also checked for changes, for file
    /// systems that send no change events.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: HumanDuration,
    /// Quiet time after the last change event before reloading; bursts of saves coalesce.
    #[serde(default = "default_debounce")]
    pub debounce: HumanDuration,
    /// Whether to use file change events (inotify); set false on file systems whose events are
    /// unreliable (network mounts) to rely on the poll alone.
    #[serde(default = "default_true")]
    pub watch: bool,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        ReloadConfig {
            poll_interval: default_poll_interval(),
            debounce: default_debounce(),
            watch: true,
        }
    }
}

/// Agent authentication.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// File of bearer tokens agents may send batches with, one per line (`#` comments allowed).
    /// The `TDA_INGEST_TOKENS` environment variable (comma-separated) adds to it.
    #[serde(default)]
    pub ingest_tokens_file: Option<PathBuf>,
    /// File of bearer tokens allowed to administer the collector (`POST /-/reload`), one per line.
    /// The `TDA_ADMIN_TOKENS` environment variable (comma-separated) adds to it.
    #[serde(default)]
    pub admin_tokens_file: Option<PathBuf>,
    /// File of bearer tokens allowed to read analytics (the API and the dashboard's data), one
    /// per line; when none is configured (here or in `TDA_READ_TOKENS`), reading is open.
    /// Admin tokens may read too.
    #[serde(default)]
    pub read_tokens_file: Option<PathBuf>,
}

/// Limits on what one request may carry.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body as sent (compressed), bytes; larger is 413.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Largest batch after decompression, bytes; larger is 413.
    #[serde(default = "default_max_decompressed")]
    pub max_decompressed_bytes: usize,
    /// Batches being stored at once; more are answered 429 with `Retry-After` rather than queued
    /// without bound. Takes effect at restart.
    #[serde(default = "default_max_inflight")]
    pub max_inflight_batches: usize,
    /// Most events one batch may hold; more is 413 (the agent's batches hold `batch.max_events`).
    #[serde(default = "default_max_events_per_batch")]
    pub max_events_per_batch: usize,
    /// Requests each token may make per second, on average (0: no limit); more are answered 429
    /// with `Retry-After`. Bursts of `burst_per_token` are allowed.
    #[serde(default)]
    pub requests_per_second_per_token: f64,
    /// The burst a token may make above its rate (with `requests_per_second_per_token`).
    #[serde(default = "default_burst_per_token")]
    pub burst_per_token: u32,
    /// Connections served at once; one more is answered 503 with `Retry-After` and closed.
    /// Takes effect at restart.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Distinct feature names accepted per hour (0: no cap). Events of further names are
    /// stored under the feature `(overflow)` with their name in the `tda.overflow_feature`
    /// property, and counted in `events_feature_overflowed`: a service that puts ids in
    /// `feature` cannot grow the rollups without bound.
    #[serde(default = "default_max_features_per_hour")]
    pub max_features_per_hour: usize,
    /// How long a client may take to send a batch's body once its headers are in; slower is
    /// 408 (headers themselves must arrive within 10 s).
    #[serde(default = "default_body_timeout")]
    pub body_timeout: HumanDuration,
}

fn default_body_timeout() -> HumanDuration {
    HumanDuration::secs(30)
}

fn default_max_features_per_hour() -> usize {
    10_000
}

fn default_max_connections() -> usize {
    1024
}

fn default_max_events_per_batch() -> usize {
    100_000
}

fn default_burst_per_token() -> u32 {
    20
}

fn default_max_inflight() -> usize {
    32
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: default_max_body(),
            max_decompressed_bytes: default_max_decompressed(),
            max_inflight_batches: default_max_inflight(),
            max_events_per_batch: default_max_events_per_batch(),
            requests_per_second_per_token: 0.0,
            burst_per_token: default_burst_per_token(),
            max_connections: default_max_connections(),
            max_features_per_hour: default_max_features_per_hour(),
            body_timeout: default_body_timeout(),
        }
    }
}

impl CollectorConfig {
    /// Reads and validates `collector.toml`, resolving relative paths against its directory.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let mut cfg: CollectorConfig = load_toml(file)?;
        cfg.data_dir = resolve(file, &cfg.data_dir);
        cfg.profiles_dir = cfg.profiles_dir.map(|p| resolve(file, &p));
        cfg.auth.ingest_tokens_file = cfg.auth.ingest_tokens_file.map(|p| resolve(file, &p));
        cfg.auth.admin_tokens_file = cfg.auth.admin_tokens_file.map(|p| resolve(file, &p));
        cfg.auth.read_tokens_file = cfg.auth.read_tokens_file.map(|p| resolve(file, &p));
        if let Some(tls) = &mut cfg.tls {
            tls.cert_file = resolve(file, &tls.cert_file);
            tls.key_file = resolve(file, &tls.key_file);
            tls.client_ca_file = tls.client_ca_file.as_ref().map(|p| resolve(file, p));
        }
        cfg.storage.clickhouse.password_file = cfg
            .storage
            .clickhouse
            .password_file
            .map(|p| resolve(file, &p));
        let db = &cfg.storage.clickhouse.database;
        if db.is_empty() || !db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ConfigError::new(
                file,
                format!("storage.clickhouse.database: `{db}` must be letters, digits and _"),
            ));
        }
        if cfg.limits.body_timeout.is_zero() {
            return Err(ConfigError::new(file, "limits.body_timeout: must be > 0"));
        }
        if cfg.limits.max_connections == 0 {
            return Err(ConfigError::new(
                file,
                "limits.max_connections: must be > 0",
            ));
        }
        if cfg.limits.max_inflight_batches == 0 {
            return Err(ConfigError::new(
                file,
                "limits.max_inflight_batches: must be > 0",
            ));
        }
        if cfg.limits.max_body_bytes == 0 || cfg.limits.max_decompressed_bytes == 0 {
            return Err(ConfigError::new(
                file,
                "limits: max_body_bytes and max_decompressed_bytes must be > 0",
            ));
        }
        let rate = cfg.limits.requests_per_second_per_token;
        if !rate.is_finite() || rate < 0.0 || cfg.limits.burst_per_token == 0 {
            return Err(ConfigError::new(
                file,
                "limits: requests_per_second_per_token must be >= 0 and burst_per_token > 0",
            ));
        }
        if cfg.limits.max_events_per_batch == 0 {
            return Err(ConfigError::new(
                file,
                "limits.max_events_per_batch: must be > 0",
            ));
        }
        if cfg.retention.every.is_zero() {
            return Err(ConfigError::new(file, "retention.every: must be > 0"));
        }
        if cfg.storage.compact_every.is_zero() {
            return Err(ConfigError::new(file, "storage.compact_every: must be > 0"));
        }
        if cfg.reload.poll_interval.is_zero() {
            return Err(ConfigError::new(file, "reload.poll_interval: must be > 0"));
        }
        cfg.alerting
            .validate()
            .map_err(|e| ConfigError::new(file, e))?;
        for r in &mut cfg.alerting.receivers {
            r.hmac_secret_file = r.hmac_secret_file.as_ref().map(|p| resolve(file, p));
            r.body_template_file = r.body_template_file.as_ref().map(|p| resolve(file, p));
        }
        Ok(cfg)
    }

    /// `<data_dir>/analytics`.
    pub fn analytics_dir(&self) -> PathBuf {
        self.data_dir.join("analytics")
    }

    /// The profiles directory in force.
    pub fn profiles_dir(&self) -> PathBuf {
        self.profiles_dir
            .clone()
            .unwrap_or_else(|| self.analytics_dir().join("profiles"))
    }
}
