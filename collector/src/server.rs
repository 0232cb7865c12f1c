//! Starts the collector from its config (the first reload: validate, then serve), and checks a
//! config without starting (`tda-collector validate`).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::app::{App, Live};
use crate::reload;

/// Runs the collector until SIGINT or SIGTERM; SIGHUP, `POST /-/reload` and file changes reload.
pub async fn run(config_file: &Path) -> anyhow::Result<()> {
    // Start-up may wait on a storage server: do it where blocking is allowed.
    let app = Arc::new(tokio::task::block_in_place(|| App::start(config_file))?);
    let cfg = app.config();
    let listener = TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("listen: cannot bind {}", cfg.listen))?;
    let _watching = reload::spawn(app.clone(), config_file);
    crate::jobs::start(&app);
    tracing::info!(listen = %cfg.listen, data_dir = %cfg.data_dir.display(), profiles = app.profiles.list().len(),
        profile_errors = app.profiles.errors().len(), "collector started");
    let stopping = app.clone();
    let stop = async move {
        tda_daemon::stop_signal().await;
        tda_daemon::service::stopping();
        stopping.stopping.send_replace(true);
    };
    let status = app.clone();
    tokio::spawn(tda_daemon::service::watchdog(
        app.progress.clone(),
        move || {
            let i = &status.ingest;
            format!(
                "listening on {}; {} profiles; {} batches stored",
                status.config().listen,
                status.profiles.list().len(),
                i.batches_stored.load(std::sync::atomic::Ordering::Relaxed)
            )
        },
    ));
    tda_daemon::service::ready(&format!("listening on {}", cfg.listen));
    let tls_of = app.clone();
    let listening = tda_daemon::Listening {
        tls: Arc::new(move || tls_of.tls()),
        max_connections: cfg.limits.max_connections,
        counters: app.connections.clone(),
    };
    tda_daemon::serve(
        listener,
        listening,
        move |req| crate::api::handle(app.clone(), req),
        stop,
    )
    .await;
    tracing::info!("collector stopped");
    Ok(())
}

/// Checks the config, its token files and every profile; returns every problem found.
pub fn validate(config_file: &Path) -> Vec<String> {
    let live = match Live::load(config_file) {
        Ok(l) => l,
        Err(e) => return vec![e.to_string()],
    };
    let dir = live.config.profiles_dir();
    let (profiles, errors) = tda_schema::profile::load_dir(&dir);
    let mut problems: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let mut ids = std::collections::BTreeMap::new();
    for p in profiles {
        if let Some(other) = ids.insert(p.id(), p.name.clone()) {
            problems.push(format!(
                "{}: profiles `{other}` and `{}` have the same id `{}`",
                dir.display(),
                p.name,
                p.id()
            ));
        }
    }
    problems
}
