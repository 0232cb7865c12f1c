//! Starts the collector from its config: storage, profiles, tokens, then the HTTP server until a
//! stop signal.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tda_schema::config::{read_secret, CollectorConfig};
use tokio::net::TcpListener;

use crate::api::App;
use crate::ingest::Tokens;
use crate::profiles::Profiles;
use crate::store::SledStore;

/// Subdirectories of `<data_dir>/analytics/`, as the seed lays them out.
pub const LAYOUT: [&str; 5] = ["profiles", "metrics", "models", "data", "reports"];

/// Reads the ingest tokens from the configured file and `TDA_INGEST_TOKENS`.
pub fn load_tokens(cfg: &CollectorConfig) -> anyhow::Result<Tokens> {
    let mut tokens = Vec::new();
    if let Some(file) = &cfg.auth.ingest_tokens_file {
        read_secret(file)?; // fails with the file named when it holds no token
        let text = std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))?;
        tokens.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    if let Ok(env) = std::env::var("TDA_INGEST_TOKENS") {
        tokens.extend(env.split(',').map(|t| t.trim().to_string()));
    }
    let tokens = Tokens::new(tokens);
    if tokens.is_empty() {
        anyhow::bail!("auth.ingest_tokens_file: no ingest token configured (set the file or TDA_INGEST_TOKENS); agents could not send batches");
    }
    Ok(tokens)
}

/// Builds the application state: creates the data layout and opens storage.
pub fn build(cfg: &CollectorConfig) -> anyhow::Result<App> {
    let analytics = cfg.analytics_dir();
    for dir in LAYOUT {
        let path = analytics.join(dir);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
    }
    let store = SledStore::open(&analytics)
        .with_context(|| format!("opening storage under {}", analytics.display()))?;
    let profiles_dir = cfg.profiles_dir();
    let profiles = Profiles::load(&profiles_dir)
        .with_context(|| format!("profiles directory {}", profiles_dir.display()))?;
    Ok(App {
        store: Arc::new(store),
        profiles,
        tokens: load_tokens(cfg)?,
        limits: cfg.limits.clone(),
    })
}

/// Runs the collector until SIGINT or SIGTERM.
pub async fn run(config_file: &Path) -> anyhow::Result<()> {
    let cfg = CollectorConfig::load(config_file)?;
    let app = Arc::new(build(&cfg)?);
    let listener = TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("listen: cannot bind {}", cfg.listen))?;
    tracing::info!(listen = %cfg.listen, data_dir = %cfg.data_dir.display(), profiles = app.profiles.list().len(),
        tokens = app.tokens.len(), "collector started");
    tda_daemon::serve(
        listener,
        move |req| app.clone().handle(req),
        tda_daemon::stop_signal(),
    )
    .await;
    tracing::info!("collector stopped");
    Ok(())
}
