//! Starts the agent from its config: sampler, intake, batcher and shipper, and stops them in order.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tda_schema::config::{read_secret, AgentConfig};
use tda_schema::profile::{load_dir, ProfileType};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::batch::{self, Batcher, Queue, Record};
use crate::counters::{add, Counters};
use crate::intake::Intake;
use crate::sample::Sampler;
use crate::ship::{self, Shipper};

/// How long the agent keeps trying to send what it holds after it is asked to stop.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The sampling interval: the shortest `collection_interval` of the performance profiles.
pub fn sample_interval(cfg: &AgentConfig) -> Duration {
    let from_profiles = cfg.profiles_dir.as_deref().and_then(|dir| {
        let (profiles, errors) = load_dir(dir);
        for e in errors {
            tracing::warn!(error = %e, "profile ignored");
        }
        profiles
            .iter()
            .filter(|p| p.kind == ProfileType::Performance)
            .map(|p| p.settings.collection_interval)
            .min()
    });
    Duration::from_secs(from_profiles.unwrap_or(cfg.default_sample_interval))
}

fn agent_id(cfg: &AgentConfig) -> String {
    cfg.agent_id
        .clone()
        .or_else(|| sysinfo::System::host_name().ok())
        .unwrap_or_else(|| "agent".into())
}

fn token(cfg: &AgentConfig) -> anyhow::Result<Option<String>> {
    if let Ok(t) = std::env::var("TDA_AGENT_TOKEN") {
        return Ok(Some(t.trim().to_string()));
    }
    match &cfg.collector.token_file {
        Some(f) => Ok(Some(read_secret(f)?)),
        None => Ok(None),
    }
}

/// Runs the agent until SIGINT or SIGTERM, then drains what it holds.
pub async fn run(config_file: &Path) -> anyhow::Result<()> {
    let cfg = AgentConfig::load(config_file)?;
    let agent_id = agent_id(&cfg);
    let interval = sample_interval(&cfg);
    let counters = Arc::new(Counters::default());
    let queue = Arc::new(Queue::new(cfg.batch.max_pending_batches, counters.clone()));
    let (records_tx, records_rx) = mpsc::channel::<Record>(1024);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (drain_tx, drain_rx) = watch::channel(false);

    let listener = TcpListener::bind(cfg.intake.listen)
        .await
        .with_context(|| format!("intake: cannot listen on {}", cfg.intake.listen))?;
    let sampler = Sampler::new(cfg.process.clone())?;
    let shipper = Shipper::new(&cfg.collector.url, token(&cfg)?);
    tracing::info!(%agent_id, intake = %cfg.intake.listen, collector = %cfg.collector.url,
        sample_interval_s = interval.as_secs(), "agent started");

    let batcher = Batcher::new(agent_id.clone(), cfg.batch.clone());
    let batching = tokio::spawn(batch::run(
        batcher,
        records_rx,
        queue.clone(),
        stop_rx.clone(),
    ));
    let shipping = tokio::spawn(ship::run(
        shipper,
        queue.clone(),
        counters.clone(),
        drain_rx,
    ));
    tokio::spawn(stop_on_signal(stop_tx));
    let sampling = tokio::spawn(sample_loop(
        sampler,
        interval,
        records_tx.clone(),
        counters.clone(),
        stop_rx.clone(),
    ));
    let intake = Arc::new(Intake {
        records: records_tx,
        counters: counters.clone(),
        agent_id,
        max_body_bytes: cfg.intake.max_body_bytes,
    });
    let mut intake_stop = stop_rx.clone();
    tda_daemon::serve(
        listener,
        move |req| intake.clone().handle(req),
        async move {
            let _ = intake_stop.changed().await;
        },
    )
    .await;
    // Stop is set: the intake no longer accepts; close the open batch, then ship what is queued.
    let _ = sampling.await;
    let _ = batching.await;
    let _ = drain_tx.send(true);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, shipping).await;
    let left = queue.len();
    if left > 0 {
        tracing::warn!(batches = left, "stopped with unsent batches");
    }
    tracing::info!(counters = ?counters.snapshot(), "agent stopped");
    Ok(())
}

/// Sets `stop` when SIGINT or SIGTERM arrives.
pub async fn stop_on_signal(stop: watch::Sender<bool>) {
    tda_daemon::stop_signal().await;
    let _ = stop.send(true);
}

async fn sample_loop(
    mut sampler: Sampler,
    interval: Duration,
    records: mpsc::Sender<Record>,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; CPU use needs an interval between readings
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let sample = sampler.sample();
        add(&counters.samples_taken, 1);
        if records
            .send(Record::Sample(Box::new(sample)))
            .await
            .is_err()
        {
            return;
        }
    }
}
