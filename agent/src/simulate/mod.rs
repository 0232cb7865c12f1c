//! The TD Generator traffic simulator: drives realistic usage into an agent's intake and writes
//! the ground truth (what it sent, to whom, and the incidents it planted).

pub mod personas;
pub mod traffic;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use tda_schema::timestamp::{now_ms, parse_bound};
use tda_schema::{Event, Timestamp};

use personas::PERSONAS;
use tda_schema::timestamp::DAY_MS;
use traffic::{Generator, Incident, TrafficConfig};

/// Command-line arguments of `tda-agent simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Base URL of the agent's intake.
    #[arg(long, default_value = "http://127.0.0.1:7301")]
    pub intake: String,
    /// Number of simulated users.
    #[arg(long, default_value_t = 200)]
    pub users: usize,
    /// Simulated time span, for example `1d` or `7d`.
    #[arg(long, default_value = "1d", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Simulated start (RFC 3339 or epoch ms); by default `duration` before now, so the traffic
    /// ends about now.
    #[arg(long)]
    pub start: Option<String>,
    /// Wall-clock time to spread the whole simulated span over (a week in `60s`); absent means
    /// as fast as the intake takes it.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub over: Option<Duration>,
    /// Average sessions per user per day.
    #[arg(long, default_value_t = 3.0)]
    pub sessions_per_user_day: f64,
    /// Traffic growth per week (0.05 is +5 %).
    #[arg(long, default_value_t = 0.05)]
    pub growth_per_week: f64,
    /// Planted incident, `KIND@OFFSET+DURATION` (latency_spike, error_burst, traffic_drop,
    /// latency_drift, latency_jitter, holiday); repeatable.
    #[arg(long = "incident")]
    pub incidents: Vec<Incident>,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Where to write the ground truth JSON.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Events per intake request.
    #[arg(long, default_value_t = 1000)]
    pub chunk: usize,
    /// After the simulated span (and writing the ground truth), go on sending traffic in real
    /// time until stopped, so live views keep moving.
    #[arg(long)]
    pub live: bool,
    /// Multiplies the session rate of the live traffic (a demo with few users still moves).
    #[arg(long, default_value_t = 1.0)]
    pub live_rate: f64,
}

/// What the simulator sent, for checking what the collector reports.
#[derive(Debug, Default, Serialize)]
pub struct Truth {
    /// Random seed used.
    pub seed: u64,
    /// Simulated start, epoch ms (inclusive).
    pub start: i64,
    /// Simulated end, epoch ms (exclusive).
    pub end: i64,
    /// Events sent.
    pub events: u64,
    /// Events that were errors (an `error` or a 5xx status).
    pub errors: u64,
    /// Distinct users that sent at least one event.
    pub distinct_users: usize,
    /// Events per feature.
    pub features: BTreeMap<String, u64>,
    /// Events per error type.
    pub error_kinds: BTreeMap<String, u64>,
    /// Per persona: its users that sent events, and their event count.
    pub personas: BTreeMap<String, PersonaTruth>,
    /// Planted incidents, with absolute windows.
    pub incidents: Vec<IncidentTruth>,
    /// The journeys sessions follow, per persona (a session may stop early: drop-off).
    pub journeys: Vec<JourneyTruth>,
}

/// A planted journey.
#[derive(Debug, Default, Serialize)]
pub struct JourneyTruth {
    /// Persona that takes it.
    pub persona: String,
    /// Share of the persona's sessions that follow it.
    pub weight: f64,
    /// Its features, in order.
    pub steps: Vec<String>,
}

/// Ground truth of one persona.
#[derive(Debug, Default, Serialize)]
pub struct PersonaTruth {
    /// Users of this persona that sent events.
    pub users: BTreeSet<String>,
    /// Events they sent.
    pub events: u64,
}

/// A planted incident's absolute window.
#[derive(Debug, Serialize)]
pub struct IncidentTruth {
    /// Incident kind.
    pub kind: traffic::IncidentKind,
    /// Start, epoch ms.
    pub start: i64,
    /// End, epoch ms (exclusive).
    pub end: i64,
}

impl Truth {
    fn record(&mut self, events: &[Event], persona_of: &BTreeMap<String, usize>) {
        for e in events {
            self.events += 1;
            *self.features.entry(e.feature.clone()).or_default() += 1;
            if let Some(kind) = e.error_kind() {
                self.errors += 1;
                *self.error_kinds.entry(kind).or_default() += 1;
            }
            let persona = persona_of
                .get(&e.user_id)
                .map_or("unknown", |&p| PERSONAS[p].name);
            let p = self.personas.entry(persona.to_string()).or_default();
            p.events += 1;
            p.users.insert(e.user_id.clone());
        }
    }
}

/// Runs the simulation against the intake and writes the ground truth.
pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let span = args.duration.as_millis() as i64;
    if span <= 0 || args.users == 0 || args.chunk == 0 {
        bail!("--duration, --users and --chunk must be > 0");
    }
    let start = match &args.start {
        Some(s) => parse_bound(s, now_ms()).map_err(anyhow::Error::msg)?,
        None => now_ms() - span,
    };
    let cfg = TrafficConfig {
        users: args.users,
        start_ms: start,
        end_ms: start + span,
        sessions_per_user_day: args.sessions_per_user_day,
        growth_per_week: args.growth_per_week,
        incidents: args.incidents.clone(),
        seed: args.seed,
    };
    let sender = Sender::new(&args.intake)?;
    let truth = drive(
        cfg.clone(),
        &sender,
        Pace::new(start, span, args.over),
        args.chunk,
    )
    .await?;
    report(&truth, args.truth.as_ref())?;
    if args.live {
        eprintln!("going on in real time (live traffic) until stopped");
        let live = TrafficConfig {
            start_ms: start + span,
            end_ms: start + span + 365 * DAY_MS,
            incidents: vec![],
            sessions_per_user_day: cfg.sessions_per_user_day * args.live_rate,
            ..cfg
        };
        let year = Duration::from_secs(365 * 86_400);
        drive(
            live.clone(),
            &sender,
            Pace::new(live.start_ms, year.as_millis() as i64, Some(year)),
            args.chunk,
        )
        .await?;
    }
    Ok(())
}

/// Sends the traffic of `cfg` at the pace given and returns what was sent.
async fn drive(
    cfg: TrafficConfig,
    sender: &Sender,
    pace: Pace,
    chunk_size: usize,
) -> anyhow::Result<Truth> {
    let (start, end) = (cfg.start_ms, cfg.end_ms);
    let mut truth = Truth {
        seed: cfg.seed,
        start,
        end,
        ..Truth::default()
    };
    truth.journeys = PERSONAS
        .iter()
        .flat_map(|p| {
            p.journeys.iter().map(|(weight, steps)| JourneyTruth {
                persona: p.name.to_string(),
                weight: *weight,
                steps: steps.iter().map(|s| s.to_string()).collect(),
            })
        })
        .collect();
    truth.incidents = cfg
        .incidents
        .iter()
        .map(|i| IncidentTruth {
            kind: i.kind,
            start: start + i.offset_ms,
            end: start + i.offset_ms + i.duration_ms,
        })
        .collect();
    let generator = Generator::new(cfg);
    let persona_of: BTreeMap<String, usize> = generator
        .users()
        .iter()
        .map(|u| (u.id.clone(), u.persona))
        .collect();
    let mut chunk: Vec<Event> = Vec::with_capacity(chunk_size);
    for (minute, events) in generator {
        chunk.extend(events);
        if chunk.len() >= chunk_size || (pace.due(minute) && !chunk.is_empty()) {
            pace.wait(minute).await;
            for part in chunk.chunks(chunk_size) {
                sender.send(part).await?;
                truth.record(part, &persona_of);
            }
            chunk.clear();
        }
    }
    for part in chunk.chunks(chunk_size) {
        sender.send(part).await?;
        truth.record(part, &persona_of);
    }
    truth.distinct_users = truth.personas.values().map(|p| p.users.len()).sum();
    Ok(truth)
}

fn report(truth: &Truth, file: Option<&PathBuf>) -> anyhow::Result<()> {
    eprintln!(
        "simulated {} events from {} users ({} errors) between {} and {}",
        truth.events,
        truth.distinct_users,
        truth.errors,
        Timestamp(truth.start).to_rfc3339(),
        Timestamp(truth.end).to_rfc3339()
    );
    if let Some(f) = file {
        let json = serde_json::to_vec_pretty(truth)?;
        std::fs::write(f, json)
            .with_context(|| format!("writing ground truth to {}", f.display()))?;
    }
    Ok(())
}

/// Maps simulated time to wall-clock time when pacing is on.
struct Pace {
    start_ms: i64,
    factor: Option<f64>,
    wall_start: Instant,
    /// Send at least this often in simulated ms so live views move smoothly.
    flush_every_ms: i64,
}

impl Pace {
    fn new(start_ms: i64, span_ms: i64, over: Option<Duration>) -> Self {
        let factor = over.map(|o| span_ms as f64 / o.as_millis().max(1) as f64);
        let flush_every_ms = factor.map_or(i64::MAX, |f| (f * 250.0) as i64).max(60_000);
        Pace {
            start_ms,
            factor,
            wall_start: Instant::now(),
            flush_every_ms,
        }
    }

    /// Whether a flush is due at this simulated minute.
    fn due(&self, minute: i64) -> bool {
        self.factor.is_some() && (minute - self.start_ms) % self.flush_every_ms < 60_000
    }

    async fn wait(&self, minute: i64) {
        if let Some(f) = self.factor {
            let wall_ms = ((minute - self.start_ms).max(0) as f64 / f) as u64;
            let target = self.wall_start + Duration::from_millis(wall_ms);
            tokio::time::sleep_until(target.into()).await;
        }
    }
}

/// Posts chunks of events to the intake, retrying while it is busy or starting.
struct Sender {
    client: reqwest::Client,
    url: String,
}

impl Sender {
    fn new(intake: &str) -> anyhow::Result<Self> {
        let client = tda_daemon::tls::client_builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Sender {
            client,
            url: format!("{}/v1/events", intake.trim_end_matches('/')),
        })
    }

    async fn send(&self, events: &[Event]) -> anyhow::Result<()> {
        let body = serde_json::to_vec(events)?;
        let mut delay = Duration::from_millis(100);
        for _ in 0..30 {
            match self
                .client
                .post(&self.url)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) if r.status().is_client_error() => {
                    let status = r.status();
                    bail!(
                        "intake refused events: {status}: {}",
                        r.text().await.unwrap_or_default()
                    )
                }
                Ok(r) => tracing::warn!(status = %r.status(), "intake busy, retrying"),
                Err(e) => tracing::warn!(error = %e, "intake unreachable, retrying"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
        bail!(
            "intake at {} did not take events after 30 attempts",
            self.url
        )
    }
}
