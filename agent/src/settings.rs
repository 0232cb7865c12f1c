//! The agent's live settings: its config file (reloaded on SIGHUP and on change) and the
//! sampling interval, which the collector serves from its profiles, else the local profiles
//! directory gives, else `default_sample_interval`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use serde::Serialize;
use tda_daemon::ConfigStatus;
use tda_schema::config::{read_secret, AgentConfig, BatchConfig, ConfigError, ProcessConfig};
use tda_schema::profile::{load_dir, ProfileType};
use tda_schema::Timestamp;
use tokio::sync::{mpsc, watch};

/// Quiet time after a change event before the config is re-read.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// Where the sampling interval in force comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The collector's performance profiles that apply to this agent.
    Collector,
    /// The agent's own profiles directory.
    LocalProfiles,
    /// `default_sample_interval`.
    Default,
}

/// The sampling interval in force and its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sampling {
    /// Seconds between samples.
    pub interval_secs: u64,
    /// Where it comes from.
    pub source: Source,
}

/// Where batches go: the collector URL and the bearer token.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Collector base URL.
    pub url: String,
    /// Bearer token.
    pub token: Option<String>,
}

/// The settings every task reads; swapped as a whole on reload.
pub struct Live {
    agent_id: String,
    config: RwLock<Arc<AgentConfig>>,
    target: RwLock<Target>,
    /// The HTTP client to the collector, built with the TLS files the config names.
    client: RwLock<reqwest::Client>,
    status: RwLock<ConfigStatus>,
    served: RwLock<Option<u64>>,
    /// The local profiles' interval, read at load and reload (not at every poll).
    local: RwLock<Option<u64>>,
    sampling: watch::Sender<Sampling>,
    batch: watch::Sender<BatchConfig>,
    process: watch::Sender<ProcessConfig>,
}

/// How long the agent waits to connect to the collector.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client to the collector that verifies it by the configured CA (else the system's roots)
/// and presents the configured client certificate.
fn client(file: &Path, cfg: &AgentConfig) -> Result<reqwest::Client, ConfigError> {
    let c = &cfg.collector;
    let tls = tda_daemon::tls::ClientTls {
        ca_file: c.ca_file.clone(),
        identity: c.client_cert_file.clone().zip(c.client_key_file.clone()),
    };
    let builder = tda_daemon::tls::client_builder().connect_timeout(CONNECT_TIMEOUT);
    tls.apply(builder)
        .and_then(|b| {
            b.build().map_err(|e| tda_daemon::tls::TlsError {
                path: file.to_path_buf(),
                message: tda_daemon::tls::with_causes(&e),
            })
        })
        .map_err(|e| ConfigError::new(file, format!("collector TLS: {e}")))
}

fn token(cfg: &AgentConfig) -> Result<Option<String>, ConfigError> {
    if let Ok(t) = std::env::var("TDA_AGENT_TOKEN") {
        return Ok(Some(t.trim().to_string()));
    }
    cfg.collector
        .token_file
        .as_deref()
        .map(read_secret)
        .transpose()
}

/// The shortest `collection_interval` of the performance profiles in a local directory.
fn local_interval(cfg: &AgentConfig, agent_id: &str) -> Option<u64> {
    let (profiles, errors) = load_dir(cfg.profiles_dir.as_deref()?);
    for e in errors {
        tracing::warn!(error = %e, "local profile ignored");
    }
    profiles
        .iter()
        .filter(|p| p.kind == ProfileType::Performance && p.applies_to(agent_id))
        .map(|p| p.settings.collection_interval)
        .min()
}

impl Live {
    /// Reads and validates the config file and the token it names.
    pub fn load(config_file: &Path) -> Result<Arc<Live>, ConfigError> {
        let config = AgentConfig::load(config_file)?;
        let agent_id = config
            .agent_id
            .clone()
            .or_else(|| sysinfo::System::host_name().ok())
            .unwrap_or_else(|| "agent".into());
        let target = Target {
            url: config.collector.url.clone(),
            token: token(&config)?,
        };
        let client = client(config_file, &config)?;
        let status = ConfigStatus {
            file: config_file.to_path_buf(),
            loaded_at: Timestamp::now().to_rfc3339(),
            ..ConfigStatus::default()
        };
        let live = Live {
            sampling: watch::channel(Sampling {
                interval_secs: config.default_sample_interval,
                source: Source::Default,
            })
            .0,
            batch: watch::channel(config.batch.clone()).0,
            process: watch::channel(config.process.clone()).0,
            agent_id,
            config: RwLock::new(Arc::new(config)),
            target: RwLock::new(target),
            client: RwLock::new(client),
            status: RwLock::new(status),
            served: RwLock::new(None),
            local: RwLock::new(None),
        };
        live.read_local_profiles();
        Ok(Arc::new(live))
    }

    /// The agent's id.
    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    /// The config in force (shared: a reload swaps in a new one).
    pub fn config(&self) -> Arc<AgentConfig> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Where batches go now.
    pub fn target(&self) -> Target {
        self.target
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The HTTP client to the collector in force.
    pub fn client(&self) -> reqwest::Client {
        self.client
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The config file's status.
    pub fn status(&self) -> ConfigStatus {
        self.status
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The sampling interval in force; watch it for changes.
    pub fn sampling(&self) -> watch::Receiver<Sampling> {
        self.sampling.subscribe()
    }

    /// The batch settings in force; watch them for changes.
    pub fn batch(&self) -> watch::Receiver<BatchConfig> {
        self.batch.subscribe()
    }

    /// How to find the watched process; watch it for changes.
    pub fn process(&self) -> watch::Receiver<ProcessConfig> {
        self.process.subscribe()
    }

    /// Records what the collector served (`None` when no profile applies) and recomputes.
    pub fn set_served(&self, interval: Option<u64>) {
        *self.served.write().unwrap_or_else(|p| p.into_inner()) = interval;
        self.update_sampling();
    }

    /// Re-reads the local profiles directory, then recomputes the interval.
    fn read_local_profiles(&self) {
        let local = local_interval(&self.config(), &self.agent_id);
        *self.local.write().unwrap_or_else(|p| p.into_inner()) = local;
        self.update_sampling();
    }

    /// Largest intake request body in force, bytes.
    pub fn intake_limit(&self) -> usize {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .intake
            .max_body_bytes
    }

    fn update_sampling(&self) {
        let served = *self.served.read().unwrap_or_else(|p| p.into_inner());
        let local = *self.local.read().unwrap_or_else(|p| p.into_inner());
        let default = self
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .default_sample_interval;
        let sampling = match (served, local) {
            (Some(s), _) => Sampling {
                interval_secs: s,
                source: Source::Collector,
            },
            (None, Some(l)) => Sampling {
                interval_secs: l,
                source: Source::LocalProfiles,
            },
            (None, None) => Sampling {
                interval_secs: default,
                source: Source::Default,
            },
        };
        self.sampling.send_if_modified(|s| {
            let changed = *s != sampling;
            if changed {
                tracing::info!(interval_s = sampling.interval_secs, source = ?sampling.source, "sampling interval set");
                *s = sampling;
            }
            changed
        });
    }

    /// Re-reads the config file: a bad edit keeps the config in force; settings that need a
    /// restart are named and left as they are; the rest applies at once.
    pub fn reload(&self) {
        let file = self.status().file;
        let loaded = AgentConfig::load(&file)
            .and_then(|c| token(&c).map(|t| (c, t)))
            .and_then(|(c, t)| client(&file, &c).map(|client| (c, t, client)));
        let (mut new, token, client) = match loaded {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "config not reloaded; the one in force stays");
                self.status
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .last_error = Some(e.to_string());
                return;
            }
        };
        let old = self.config();
        let mut restart = Vec::new();
        if new.agent_id != old.agent_id {
            restart.push("agent_id".to_string());
            new.agent_id = old.agent_id.clone();
        }
        if new.intake.listen != old.intake.listen {
            restart.push("intake.listen".to_string());
            new.intake.listen = old.intake.listen;
        }
        let listener = |p: &Option<tda_schema::config::PublicIntake>| {
            p.as_ref()
                .map(|p| (p.listen, p.tls.clone(), p.max_connections))
        };
        if listener(&new.intake.public) != listener(&old.intake.public) {
            restart.push("intake.public (listen, tls, max_connections)".to_string());
        }
        for field in &restart {
            tracing::warn!(setting = %field, "changed in the config file; takes effect after a restart");
        }
        *self.target.write().unwrap_or_else(|p| p.into_inner()) = Target {
            url: new.collector.url.clone(),
            token,
        };
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = client;
        self.batch
            .send_if_modified(|b| std::mem::replace(b, new.batch.clone()) != new.batch);
        self.process
            .send_if_modified(|p| std::mem::replace(p, new.process.clone()) != new.process);
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
        *self.status.write().unwrap_or_else(|p| p.into_inner()) = ConfigStatus {
            file,
            last_error: None,
            restart_needed: restart,
            loaded_at: Timestamp::now().to_rfc3339(),
        };
        self.read_local_profiles();
        tracing::info!("config reloaded");
    }
}

/// Asks the collector for this agent's sampling settings every `settings_poll_interval`.
pub async fn poll_collector(live: Arc<Live>, mut stop: watch::Receiver<bool>) {
    loop {
        let target = live.target();
        let url = format!(
            "{}/v1/agents/{}/settings",
            target.url.trim_end_matches('/'),
            live.agent_id()
        );
        let mut req = live.client().get(&url).timeout(Duration::from_secs(10));
        if let Some(t) = &target.token {
            req = req.bearer_auth(t);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => match r.json::<serde_json::Value>().await {
                Ok(v) => live.set_served(v["collection_interval"].as_u64().filter(|s| *s > 0)),
                Err(e) => tracing::warn!(error = %e, "collector settings unreadable"),
            },
            Ok(r) => tracing::warn!(status = %r.status(), "collector refused the settings request"),
            Err(e) => {
                tracing::debug!(error = %tda_daemon::tls::with_causes(&e), "collector unreachable for settings")
            }
        }
        let every = live.config().collector.settings_poll_interval.0;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Reloads the config on SIGHUP and when the config file or the local profiles change.
pub async fn watch_config(live: Arc<Live>, mut stop: watch::Receiver<bool>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let _watcher = watcher(&live, tx.clone());
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading");
            if tx.send(()).is_err() {
                return;
            }
        }
    });
    loop {
        tokio::select! {
            got = rx.recv() => if got.is_none() { return },
            _ = stop.changed() => return,
        }
        while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {}
        tda_daemon::service::reloading();
        live.reload();
        tda_daemon::service::ready("reloaded");
    }
}

fn watcher(live: &Live, tx: mpsc::UnboundedSender<()>) -> Option<notify::RecommendedWatcher> {
    let file = live.status().file;
    let name = file.file_name().map(|n| n.to_os_string());
    let mut w = notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
        let relevant = |p: &PathBuf| {
            p.extension().is_some_and(|x| x == "toml")
                || p.file_name().map(|n| n.to_os_string()) == name
        };
        // Reading a file is an access event: only changes count.
        let change = |e: &notify::Event| !matches!(e.kind, notify::EventKind::Access(_));
        if e.is_ok_and(|e| change(&e) && e.paths.iter().any(relevant)) {
            let _ = tx.send(());
        }
    })
    .map_err(|e| tracing::warn!(error = %e, "no file change events; reload with SIGHUP"))
    .ok()?;
    let config_dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let dirs = [Some(config_dir), live.config().profiles_dir.clone()];
    for dir in dirs.iter().flatten() {
        if let Err(e) = w.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch");
        }
    }
    Some(w)
}
