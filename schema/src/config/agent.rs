//! `agent.toml`: the agent's intake, SDK intakes, public intake, request-log tail, collector
//! target, batching, spool and watched process, with defaults and validation.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;

use super::{default_true, load_toml, resolve, ConfigError, ServerTlsConfig};
use crate::duration::HumanDuration;

fn default_intake_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7301))
}
fn default_collector_url() -> String {
    "http://127.0.0.1:7300".into()
}
fn default_max_events() -> usize {
    5_000
}
fn default_max_bytes() -> usize {
    1 << 20
}
fn default_max_age_ms() -> u64 {
    2_000
}
fn default_sample_interval() -> u64 {
    crate::profile::DEFAULT_COLLECTION_INTERVAL
}
fn default_max_intake_bytes() -> usize {
    8 << 20
}

/// `agent.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Name this agent reports under; the host name when absent.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// Directory of profile TOML files; the shortest `collection_interval` of the performance
    /// profiles there sets the sampling interval. Relative paths are relative to this file.
    #[serde(default)]
    pub profiles_dir: Option<PathBuf>,
    /// Sampling interval in seconds when no performance profile is found.
    #[serde(default = "default_sample_interval")]
    pub default_sample_interval: u64,
    /// Where batches go.
    #[serde(default)]
    pub collector: CollectorTarget,
    /// The local HTTP intake for usage events.
    #[serde(default)]
    pub intake: IntakeConfig,
    /// When a batch is closed and shipped.
    #[serde(default)]
    pub batch: BatchConfig,
    /// The on-disk spool.
    #[serde(default)]
    pub spool: SpoolConfig,
    /// The TD Generator process to watch.
    #[serde(default)]
    pub process: ProcessConfig,
    /// A JSON-lines request log to follow, for instances that log rather than call an SDK.
    #[serde(default)]
    pub request_log: Option<RequestLogConfig>,
}

/// A JSON-lines request log the agent follows (one JSON object per line).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestLogConfig {
    /// The log file. Relative paths are relative to this file. Rotation (rename, then a new
    /// file) and truncation (copytruncate) are followed; the position read is kept in the spool
    /// directory, so a restart resumes where the last run stopped.
    pub path: PathBuf,
    /// Fields holding the request's time (RFC 3339 or epoch ms), first present wins; none
    /// present: the time the line is read.
    #[serde(default = "default_log_time_fields")]
    pub timestamp: Vec<String>,
    /// Fields holding the user id, first present wins; a line with none is refused.
    #[serde(default = "default_log_user_fields")]
    pub user_id: Vec<String>,
    /// Where the first run starts reading: `end` (only lines written from now) or `beginning`.
    #[serde(default)]
    pub start_at: StartAt,
    /// How often the file is checked when no change notification arrives.
    #[serde(default = "default_log_poll")]
    pub poll_interval: HumanDuration,
    /// Which fields fill the event's other fields; no feature field: the route is the feature.
    #[serde(default)]
    pub mapping: PropertyMapping,
}

/// Where a request log is first read from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// Lines written after the agent first starts.
    #[default]
    End,
    /// The whole file.
    Beginning,
}

fn default_log_time_fields() -> Vec<String> {
    names(&["timestamp", "time", "ts"])
}
fn default_log_user_fields() -> Vec<String> {
    names(&["user_id", "user"])
}
fn default_log_poll() -> HumanDuration {
    HumanDuration::secs(1)
}

/// The collector an agent ships to.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectorTarget {
    /// Base URL of the collector, for example `http://collector:7300`.
    #[serde(default = "default_collector_url")]
    pub url: String,
    /// File holding the bearer token (first non-empty line). The `TDA_AGENT_TOKEN` environment
    /// variable overrides it.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// How often the agent asks the collector for its sampling settings.
    #[serde(default = "default_settings_poll")]
    pub settings_poll_interval: HumanDuration,
    /// PEM CA certificates that sign the collector's certificate (an `https://` URL); the
    /// system's roots when absent.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate the agent presents, for a collector that requires mutual TLS
    /// (with `client_key_file`).
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}

fn default_settings_poll() -> HumanDuration {
    HumanDuration::secs(30)
}

impl Default for CollectorTarget {
    fn default() -> Self {
        CollectorTarget {
            url: default_collector_url(),
            token_file: None,
            settings_poll_interval: default_settings_poll(),
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
        }
    }
}

/// The agent's local event intake.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IntakeConfig {
    /// Address the intake listens on; keep it on loopback unless the network is trusted.
    #[serde(default = "default_intake_listen")]
    pub listen: SocketAddr,
    /// Largest request body accepted, bytes.
    #[serde(default = "default_max_intake_bytes")]
    pub max_body_bytes: usize,
    /// Connections served at once; one more is answered 503 and closed. Takes effect at
    /// restart.
    #[serde(default = "default_intake_connections")]
    pub max_connections: usize,
    /// The PostHog-compatible intake (`/capture`, `/batch`, `/e`, `/i/v0/e`).
    #[serde(default)]
    pub posthog: SdkIntake,
    /// The Segment-compatible intake (`/v1/track`, `/v1/identify`, `/v1/page`, `/v1/batch`).
    #[serde(default)]
    pub segment: SdkIntake,
    /// Which PostHog or Segment event properties fill the event's fields.
    #[serde(default)]
    pub mapping: PropertyMapping,
    /// When the intake answers: `durable` once the events are fsynced in the spool's
    /// write-ahead log (a killed agent loses nothing it acknowledged), `memory` once they are in
    /// the open batch (up to `batch.max_age_ms` of them are lost if the agent is killed).
    #[serde(default)]
    pub ack: IntakeAck,
    /// The public intake for browsers (posthog-js, analytics.js): a second listener serving
    /// only the SDK routes, with CORS, keys, rate and size limits. Off when absent.
    #[serde(default)]
    pub public: Option<PublicIntake>,
}

fn default_public_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 7302))
}
fn default_public_body_bytes() -> usize {
    1 << 20
}
fn default_public_event_bytes() -> usize {
    32 << 10
}
fn default_public_connections() -> usize {
    4096
}
fn default_per_ip() -> RateLimit {
    RateLimit {
        per_second: 20.0,
        burst: 100,
    }
}
fn default_per_key() -> RateLimit {
    RateLimit {
        per_second: 10_000.0,
        burst: 20_000,
    }
}

/// The browser-facing intake: only the PostHog and Segment routes, their CORS preflights and
/// the configuration documents the browser SDKs fetch; nothing else of the agent's API.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublicIntake {
    /// Address it listens on. Takes effect at restart.
    #[serde(default = "default_public_listen")]
    pub listen: SocketAddr,
    /// Page origins whose scripts may send (`https://app.example.com`, scheme and host and any
    /// port, as the browser's `Origin` header gives it); `"*"` allows every origin. Requests
    /// from other origins are refused (403) and their preflights get no CORS grant.
    pub origins: Vec<String>,
    /// The address browsers reach this intake at (`https://intake.example.com`), written into
    /// the analytics.js settings document; when absent, taken from the request's `Host` (and
    /// `X-Forwarded-Proto` from a trusted proxy).
    #[serde(default)]
    pub public_url: Option<String>,
    /// TLS on this listener; plain HTTP when absent (then put a TLS-terminating reverse proxy
    /// in front: browsers on HTTPS pages cannot send to plain HTTP). Takes effect at restart.
    #[serde(default)]
    pub tls: Option<ServerTlsConfig>,
    /// Addresses of reverse proxies whose `X-Forwarded-For` names the client, for the per-IP
    /// limit; without it every client behind a proxy counts as the proxy.
    #[serde(default)]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Requests a second one client IP may make (a token bucket): more are refused with 429.
    #[serde(default = "default_per_ip")]
    pub per_ip: RateLimit,
    /// Events a second one project key may send: more are refused with 429.
    #[serde(default = "default_per_key")]
    pub per_key: RateLimit,
    /// Largest request body accepted, bytes (after gunzip too).
    #[serde(default = "default_public_body_bytes")]
    pub max_body_bytes: usize,
    /// Largest single event accepted, in about the bytes it takes as JSON (as batches are
    /// counted); a request carrying a larger one is refused with 413.
    #[serde(default = "default_public_event_bytes")]
    pub max_event_bytes: usize,
    /// Connections served at once; one more is answered 503 and closed. Takes effect at
    /// restart.
    #[serde(default = "default_public_connections")]
    pub max_connections: usize,
}

/// A token bucket: a steady rate and the burst it may save up.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Tokens added a second.
    pub per_second: f64,
    /// Most tokens held, so most taken at once after a quiet spell.
    pub burst: u32,
}

/// When the intake acknowledges events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IntakeAck {
    /// Once they are on disk (group commit: one fsync for the requests of a few milliseconds).
    #[default]
    Durable,
    /// Once they are in memory, in the open batch.
    Memory,
}

/// One SDK-compatible intake.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SdkIntake {
    /// Whether its routes are served.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Project API keys (PostHog) or write keys (Segment) accepted; empty accepts any key.
    #[serde(default)]
    pub keys: Vec<String>,
}

impl Default for SdkIntake {
    fn default() -> Self {
        SdkIntake {
            enabled: true,
            keys: Vec::new(),
        }
    }
}

/// Which properties (or, for the request log, top-level fields) fill an event's fields: each
/// field takes the first name present, and the name is taken out of the event's properties.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PropertyMapping {
    /// The product feature; when none is present, the event name (PostHog, Segment) or the
    /// route (request log).
    #[serde(default = "default_feature_names")]
    pub feature: Vec<String>,
    /// The HTTP route served.
    #[serde(default = "default_route_names")]
    pub route: Vec<String>,
    /// The HTTP status (a number, or a string of digits).
    #[serde(default = "default_status_names")]
    pub status: Vec<String>,
    /// Milliseconds to serve the request (a number, or a string of one).
    #[serde(default = "default_latency_names")]
    pub latency_ms: Vec<String>,
    /// The error type or message of a failed request.
    #[serde(default = "default_error_names")]
    pub error: Vec<String>,
    /// The client's session id.
    #[serde(default = "default_session_names")]
    pub session_id: Vec<String>,
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}
fn default_feature_names() -> Vec<String> {
    names(&["feature"])
}
fn default_route_names() -> Vec<String> {
    names(&["route", "$pathname", "path"])
}
fn default_status_names() -> Vec<String> {
    names(&["status", "status_code"])
}
fn default_latency_names() -> Vec<String> {
    names(&["latency_ms", "duration_ms"])
}
fn default_error_names() -> Vec<String> {
    names(&["error", "$exception_type"])
}
fn default_session_names() -> Vec<String> {
    names(&["session_id", "$session_id"])
}

impl Default for PropertyMapping {
    fn default() -> Self {
        PropertyMapping {
            feature: default_feature_names(),
            route: default_route_names(),
            status: default_status_names(),
            latency_ms: default_latency_names(),
            error: default_error_names(),
            session_id: default_session_names(),
        }
    }
}

fn default_intake_connections() -> usize {
    256
}

impl Default for IntakeConfig {
    fn default() -> Self {
        IntakeConfig {
            listen: default_intake_listen(),
            max_body_bytes: default_max_intake_bytes(),
            max_connections: default_intake_connections(),
            public: None,
            posthog: SdkIntake::default(),
            segment: SdkIntake::default(),
            mapping: PropertyMapping::default(),
            ack: IntakeAck::default(),
        }
    }
}

/// Batch closing rules: whichever limit is reached first closes the batch.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Most events and samples in one batch.
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    /// Most uncompressed JSON bytes in one batch (approximate).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Longest time a record waits in an open batch, milliseconds.
    #[serde(default = "default_max_age_ms")]
    pub max_age_ms: u64,
}

/// What the spool does when it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Delete the oldest batches to make room (counted in `events_dropped`).
    #[default]
    DropOldest,
    /// Keep everything spooled and answer the intake 503 until there is room.
    RefuseIntake,
}

fn default_spool_dir() -> PathBuf {
    PathBuf::from("/var/lib/tda-agent/spool")
}
fn default_spool_max_bytes() -> u64 {
    256 << 20
}

/// The on-disk spool every batch passes through before it is shipped.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Directory of spooled batches (one checksummed file each). Relative paths are relative to
    /// this file.
    #[serde(default = "default_spool_dir")]
    pub dir: PathBuf,
    /// Most bytes the spool may hold (with `refuse_intake`, a batch that closes after the intake
    /// started refusing goes in over it, by at most one batch).
    #[serde(default = "default_spool_max_bytes")]
    pub max_bytes: u64,
    /// drop_oldest | refuse_intake.
    #[serde(default)]
    pub when_full: WhenFull,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            dir: default_spool_dir(),
            max_bytes: default_spool_max_bytes(),
            when_full: WhenFull::default(),
        }
    }
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_events: default_max_events(),
            max_bytes: default_max_bytes(),
            max_age_ms: default_max_age_ms(),
        }
    }
}

/// How to find the watched process: a pid file wins over a name.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    /// File holding the process id.
    #[serde(default)]
    pub pid_file: Option<PathBuf>,
    /// Exact process name (as in `/proc/PID/comm`).
    #[serde(default)]
    pub name: Option<String>,
}

impl AgentConfig {
    /// Reads and validates `agent.toml`, resolving relative paths against its directory.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let mut cfg: AgentConfig = load_toml(file)?;
        cfg.profiles_dir = cfg.profiles_dir.map(|p| resolve(file, &p));
        cfg.collector.token_file = cfg.collector.token_file.map(|p| resolve(file, &p));
        let c = &mut cfg.collector;
        for path in [
            &mut c.ca_file,
            &mut c.client_cert_file,
            &mut c.client_key_file,
        ] {
            *path = path.as_ref().map(|p| resolve(file, p));
        }
        if c.client_cert_file.is_some() != c.client_key_file.is_some() {
            return Err(ConfigError::new(
                file,
                "collector.client_cert_file and collector.client_key_file: set both or neither",
            ));
        }
        cfg.process.pid_file = cfg.process.pid_file.map(|p| resolve(file, &p));
        if let Some(tls) = cfg.intake.public.as_mut().and_then(|p| p.tls.as_mut()) {
            tls.cert_file = resolve(file, &tls.cert_file);
            tls.key_file = resolve(file, &tls.key_file);
        }
        cfg.spool.dir = resolve(file, &cfg.spool.dir);
        if let Some(log) = &mut cfg.request_log {
            log.path = resolve(file, &log.path);
        }
        cfg.validate()
            .map_err(|message| ConfigError::new(file, message))?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        if !(self.collector.url.starts_with("http://")
            || self.collector.url.starts_with("https://"))
        {
            return Err(format!(
                "collector.url: `{}` is not an http(s) URL",
                self.collector.url
            ));
        }
        if let Some(log) = &self.request_log {
            if log.user_id.is_empty() {
                return Err("request_log.user_id: name at least one field".into());
            }
            if log.poll_interval.0 < std::time::Duration::from_millis(10) {
                return Err("request_log.poll_interval: must be at least 10ms".into());
            }
        }
        if self.batch.max_events == 0 || self.batch.max_bytes == 0 || self.batch.max_age_ms == 0 {
            return Err("batch: max_events, max_bytes and max_age_ms must be > 0".into());
        }
        if self.spool.max_bytes < 64 * 1024 {
            return Err(format!(
                "spool.max_bytes: {} is below the 65536-byte minimum",
                self.spool.max_bytes
            ));
        }
        if self.default_sample_interval == 0 {
            return Err("default_sample_interval: must be > 0 seconds".into());
        }
        if self.collector.settings_poll_interval.is_zero() {
            return Err("collector.settings_poll_interval: must be > 0".into());
        }
        if let Some(public) = &self.intake.public {
            public.validate(&self.intake)?;
        }
        Ok(())
    }
}

impl PublicIntake {
    fn validate(&self, intake: &IntakeConfig) -> Result<(), String> {
        if self.listen == intake.listen {
            return Err(format!(
                "intake.public.listen: {} is also intake.listen; the public intake needs its own port",
                self.listen
            ));
        }
        if self.origins.is_empty() {
            return Err(
                "intake.public.origins: name the page origins allowed to send (or \"*\")".into(),
            );
        }
        for o in &self.origins {
            let ok = o == "*"
                || ((o.starts_with("http://") || o.starts_with("https://"))
                    && !o.trim_end_matches('/').contains(['?', '#'])
                    && o.matches('/').count() == 2);
            if !ok {
                return Err(format!(
                    "intake.public.origins: `{o}` is not an origin (scheme://host[:port], no path)"
                ));
            }
        }
        for (name, sdk) in [("posthog", &intake.posthog), ("segment", &intake.segment)] {
            if sdk.enabled && sdk.keys.is_empty() {
                return Err(format!(
                    "intake.{name}.keys: the public intake needs the project keys it accepts; \
                     list them (or set intake.{name}.enabled = false)"
                ));
            }
        }
        for (name, r) in [("per_ip", self.per_ip), ("per_key", self.per_key)] {
            if !(r.per_second > 0.0 && r.per_second.is_finite()) || r.burst == 0 {
                return Err(format!(
                    "intake.public.{name}: per_second and burst must be > 0"
                ));
            }
        }
        if self.max_body_bytes == 0 || self.max_event_bytes == 0 {
            return Err("intake.public: max_body_bytes and max_event_bytes must be > 0".into());
        }
        if self
            .tls
            .as_ref()
            .is_some_and(|t| t.client_ca_file.is_some())
        {
            return Err(
                "intake.public.tls.client_ca_file: browsers present no client certificate".into(),
            );
        }
        Ok(())
    }
}
