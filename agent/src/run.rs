//! Starts the agent from its config: sampler, intake, batcher, shipper and the settings tasks,
//! and stops them in order.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tda_schema::config::ProcessConfig;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::batch::{self, Batcher, Record};
use crate::counters::{add, Counters};
use crate::intake::Intake;
use crate::sample::Sampler;
use crate::settings::{self, Live, Sampling};
use crate::ship::{self, Shipper};
use crate::spool::Spool;

/// How long the agent keeps trying to send what it holds after it is asked to stop.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks the config and the files it names; returns every problem found.
pub fn validate(config_file: &Path) -> Vec<String> {
    let live = match Live::load(config_file) {
        Ok(l) => l,
        Err(e) => return vec![e.to_string()],
    };
    let mut problems = Vec::new();
    let tls = live.config().intake.public.clone().and_then(|p| p.tls);
    if let Some(t) = tls {
        if let Err(e) = tda_daemon::tls::server_config(&t.cert_file, &t.key_file, None) {
            problems.push(format!("intake.public.tls: {e}"));
        }
    }
    if let Some(dir) = live.config().profiles_dir.clone() {
        let (_, errors) = tda_schema::profile::load_dir(&dir);
        problems.extend(errors.iter().map(ToString::to_string));
    }
    problems
}

/// Binds the public intake (and reads its TLS files); the future serves it until `stop`.
async fn serve_public(
    intake: Arc<Intake>,
    cfg: &tda_schema::config::PublicIntake,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let listener = TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("intake.public: cannot listen on {}", cfg.listen))?;
    let tls = match &cfg.tls {
        Some(t) => Some(
            tda_daemon::tls::server_config(&t.cert_file, &t.key_file, None)
                .context("intake.public.tls")?,
        ),
        None => None,
    };
    tracing::info!(listen = %cfg.listen, tls = tls.is_some(), origins = ?cfg.origins, "public intake started");
    let listening = tda_daemon::Listening {
        tls: Arc::new(move || tls.clone()),
        max_connections: cfg.max_connections,
        counters: intake.public_connections.clone(),
    };
    let handler = Arc::new(crate::public::Public::new(intake, cfg.tls.is_some()));
    Ok(tda_daemon::serve(
        listener,
        listening,
        move |req| handler.clone().handle(req),
        async move {
            let _ = stop.changed().await;
        },
    ))
}

/// Runs the agent until SIGINT or SIGTERM, then drains what it holds.
/// Records (one intake request, log step or sample each) waiting for the batcher at most: what
/// an accepted request can wait behind in memory while the spool is slow.
const RECORDS_QUEUED: usize = 64;

pub async fn run(config_file: &Path) -> anyhow::Result<()> {
    let live = Live::load(config_file)?;
    let cfg = live.config();
    let counters = Arc::new(Counters::default());
    let spool = Spool::open(
        &cfg.spool.dir,
        cfg.spool.max_bytes,
        cfg.spool.when_full,
        counters.clone(),
    )
    .with_context(|| format!("spool.dir: cannot open {}", cfg.spool.dir.display()))?;
    let spool = Arc::new(spool);
    let (records_tx, records_rx) = mpsc::channel::<Record>(RECORDS_QUEUED);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (drain_tx, drain_rx) = watch::channel(false);
    let progress = Arc::new(tda_daemon::service::Progress::default());

    let listener = TcpListener::bind(cfg.intake.listen)
        .await
        .with_context(|| format!("intake: cannot listen on {}", cfg.intake.listen))?;
    let sampler = Sampler::new(cfg.process.clone())?;
    tracing::info!(agent_id = %live.agent_id(), intake = %cfg.intake.listen, collector = %cfg.collector.url,
        sampling = ?*live.sampling().borrow(), "agent started");

    let batcher = Batcher::new(live.agent_id().to_string(), cfg.batch.clone());
    let batching = tokio::spawn(batch::run(
        batcher,
        records_rx,
        spool.clone(),
        stop_rx.clone(),
        live.batch(),
    ));
    let shipper = Shipper::new(live.clone());
    let shipping = tokio::spawn(ship::run(
        shipper,
        spool.clone(),
        counters.clone(),
        drain_rx,
        progress.register("shipper", Duration::from_secs(120)),
    ));
    let sampling = tokio::spawn(sample_loop(
        sampler,
        live.clone(),
        records_tx.clone(),
        counters.clone(),
        stop_rx.clone(),
        progress.register("sampler", Duration::from_secs(60)),
    ));
    tokio::spawn(settings::poll_collector(live.clone(), stop_rx.clone()));
    tokio::spawn(settings::watch_config(live.clone(), stop_rx.clone()));
    let tailing = tokio::spawn(crate::tail::run(
        live.clone(),
        records_tx.clone(),
        counters.clone(),
        stop_rx.clone(),
    ));
    tokio::spawn(stop_on_signal(stop_tx));
    let intake = Arc::new(Intake {
        records: records_tx,
        counters: counters.clone(),
        live,
        spool: spool.clone(),
        connections: Default::default(),
        public_connections: Default::default(),
        sdk: Default::default(),
        refusals: Default::default(),
    });
    let mut intake_stop = stop_rx.clone();
    let (status_spool, status_counters) = (spool.clone(), counters.clone());
    tokio::spawn(tda_daemon::service::watchdog(progress, move || {
        let c = status_counters.snapshot();
        format!(
            "spool {} batches; {} events sent",
            status_spool.len(),
            c.events_sent
        )
    }));
    let public = match &cfg.intake.public {
        Some(p) => Some(tokio::spawn(
            serve_public(intake.clone(), p, stop_rx.clone()).await?,
        )),
        None => None,
    };
    tda_daemon::service::ready(&format!("intake on {}", cfg.intake.listen));
    tda_daemon::serve(
        listener,
        tda_daemon::Listening {
            counters: intake.connections.clone(),
            ..tda_daemon::Listening::plain(cfg.intake.max_connections)
        },
        move |req| intake.clone().handle(req),
        async move {
            let _ = intake_stop.changed().await;
        },
    )
    .await;
    // Stop is set: the intakes no longer accept; close the open batch, then ship what is queued.
    tda_daemon::service::stopping();
    if let Some(public) = public {
        let _ = public.await;
    }
    let _ = sampling.await;
    let _ = tailing.await;
    let _ = batching.await;
    let _ = drain_tx.send(true);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, shipping).await;
    let left = spool.len();
    if left > 0 {
        tracing::info!(
            batches = left,
            "stopped; unsent batches stay spooled for the next start"
        );
    }
    tracing::info!(counters = ?counters.snapshot(), "agent stopped");
    Ok(())
}

/// Sets `stop` when SIGINT or SIGTERM arrives.
pub async fn stop_on_signal(stop: watch::Sender<bool>) {
    tda_daemon::stop_signal().await;
    let _ = stop.send(true);
}

/// Samples at the interval in force. When the interval changes, the next sample is due one new
/// interval after the last one, so the series has neither a gap nor a doubled sample.
async fn sample_loop(
    mut sampler: Sampler,
    live: Arc<Live>,
    records: mpsc::Sender<Record>,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
    beat: tda_daemon::service::Beat,
) {
    let mut sampling = live.sampling();
    let mut process = live.process();
    let mut period = secs(*sampling.borrow_and_update());
    let mut last = Instant::now();
    loop {
        beat.idle();
        tokio::select! {
            _ = tokio::time::sleep_until(last + period) => {}
            Ok(()) = sampling.changed() => {
                period = secs(*sampling.borrow_and_update());
                continue;
            }
            Ok(()) = process.changed() => {
                let p: ProcessConfig = process.borrow_and_update().clone();
                sampler.set_process(p);
                continue;
            }
            _ = stop.changed() => return,
        }
        last += period;
        if Instant::now() > last + period {
            last = Instant::now(); // fell behind (suspended host): start afresh rather than burst
        }
        beat.tick();
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

fn secs(s: Sampling) -> Duration {
    Duration::from_secs(s.interval_secs.max(1))
}
