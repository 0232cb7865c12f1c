//! Generates the simulated traffic minute by minute: sessions arrive as a Poisson process shaped by
//! daily and weekly seasonality, growth and incidents; each follows its persona's journey.

use std::str::FromStr;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Exp, LogNormal, Poisson};
use serde::Serialize;
use serde_json::{Map, Value};
use tda_schema::{Event, Timestamp};

use super::personas::{diurnal, feature, weekly, Persona, PERSONAS};
use tda_schema::timestamp::MINUTE_MS;
use tda_schema::timestamp::{DAY_MS, HOUR_MS};

/// A planted incident: a kind and a window of simulated time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    /// What it does (see [`IncidentKind`]).
    pub kind: IncidentKind,
    /// Start, milliseconds after the simulation start.
    pub offset_ms: i64,
    /// Length, milliseconds.
    pub duration_ms: i64,
}

/// What an incident does to the traffic: one of each shape an operator meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// Every request is 8x slower (a spike).
    LatencySpike,
    /// 30 % more requests fail.
    ErrorBurst,
    /// Sessions arrive at a fifth of the usual rate (a level shift down).
    TrafficDrop,
    /// Requests slow down steadily, to 4x at the end of the window (a drift).
    LatencyDrift,
    /// Each request's latency varies far more than usual (a variance change).
    LatencyJitter,
    /// Sessions arrive at the day's mean rate all day: no daily peak (a broken season).
    Holiday,
}

impl IncidentKind {
    /// Every kind, with its name in `--incident`.
    pub const ALL: [(&'static str, IncidentKind); 6] = [
        ("latency_spike", IncidentKind::LatencySpike),
        ("error_burst", IncidentKind::ErrorBurst),
        ("traffic_drop", IncidentKind::TrafficDrop),
        ("latency_drift", IncidentKind::LatencyDrift),
        ("latency_jitter", IncidentKind::LatencyJitter),
        ("holiday", IncidentKind::Holiday),
    ];
}

impl FromStr for Incident {
    type Err = String;

    /// Parses `KIND@OFFSET+DURATION`, for example `latency_spike@36h+30m`.
    fn from_str(s: &str) -> Result<Self, String> {
        let usage = || format!("`{s}`: expected KIND@OFFSET+DURATION, e.g. error_burst@36h+30m");
        let (kind, rest) = s.split_once('@').ok_or_else(usage)?;
        let (offset, duration) = rest.split_once('+').ok_or_else(usage)?;
        let Some(&(_, kind)) = IncidentKind::ALL.iter().find(|(name, _)| *name == kind) else {
            let names: Vec<&str> = IncidentKind::ALL.iter().map(|(n, _)| *n).collect();
            return Err(format!("unknown incident `{kind}` ({})", names.join(", ")));
        };
        let ms = |t: &str| {
            humantime::parse_duration(t)
                .map(|d| d.as_millis() as i64)
                .map_err(|e| format!("`{t}`: {e}"))
        };
        Ok(Incident {
            kind,
            offset_ms: ms(offset)?,
            duration_ms: ms(duration)?,
        })
    }
}

/// The traffic's shape.
#[derive(Debug, Clone)]
pub struct TrafficConfig {
    /// Number of users.
    pub users: usize,
    /// Simulated start, epoch ms.
    pub start_ms: i64,
    /// Simulated end (exclusive), epoch ms.
    pub end_ms: i64,
    /// Average sessions a user starts per day.
    pub sessions_per_user_day: f64,
    /// Traffic growth per week (0.05 = +5 %).
    pub growth_per_week: f64,
    /// Planted incidents.
    pub incidents: Vec<Incident>,
    /// Random seed: the same seed and start give the same traffic.
    pub seed: u64,
}

/// One simulated user.
#[derive(Debug, Clone)]
pub struct User {
    /// The id sent in events.
    pub id: String,
    /// Index into [`PERSONAS`].
    pub persona: usize,
}

/// Yields the events of each simulated minute, in time order.
pub struct Generator {
    cfg: TrafficConfig,
    rng: StdRng,
    users: Vec<User>,
    cumulative: Vec<f64>,
    minute: i64,
    pending: Vec<Event>,
    sessions: u64,
    done: bool,
}

impl Generator {
    /// Creates the users (persona by share, activity varying per user) and positions at the start.
    pub fn new(cfg: TrafficConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let spread = LogNormal::new(0.0, 0.5).expect("valid lognormal");
        let mut users = Vec::with_capacity(cfg.users);
        let mut cumulative = Vec::with_capacity(cfg.users);
        let mut total = 0.0;
        for i in 0..cfg.users {
            let persona = pick_persona(rng.random::<f64>());
            let p = &PERSONAS[persona];
            let id = if p.anonymous {
                format!("anon-{i:05}")
            } else {
                format!("u{i:05}")
            };
            total += p.activity * spread.sample(&mut rng);
            cumulative.push(total);
            users.push(User { id, persona });
        }
        let minute = cfg.start_ms - cfg.start_ms.rem_euclid(MINUTE_MS);
        Generator {
            cfg,
            rng,
            users,
            cumulative,
            minute,
            pending: Vec::new(),
            sessions: 0,
            done: false,
        }
    }

    /// The simulated users.
    pub fn users(&self) -> &[User] {
        &self.users
    }

    fn incident_active(&self, kind: IncidentKind, at: i64) -> bool {
        self.incident_progress(kind, at).is_some()
    }

    /// How far into an active incident of `kind` `at` is, in [0, 1); `None` outside one.
    fn incident_progress(&self, kind: IncidentKind, at: i64) -> Option<f64> {
        self.cfg.incidents.iter().find_map(|i| {
            let start = self.cfg.start_ms + i.offset_ms;
            (i.kind == kind && (start..start + i.duration_ms).contains(&at))
                .then(|| (at - start) as f64 / i.duration_ms.max(1) as f64)
        })
    }

    /// Expected session starts in the minute beginning at `at`.
    fn session_rate(&self, at: i64) -> f64 {
        let hour = at.rem_euclid(DAY_MS) as f64 / HOUR_MS as f64;
        let weekday = ((at.div_euclid(DAY_MS) + 3).rem_euclid(7)) as u32;
        let weeks = (at - self.cfg.start_ms) as f64 / (7 * DAY_MS) as f64;
        let growth = (1.0 + self.cfg.growth_per_week).powf(weeks);
        let drop = if self.incident_active(IncidentKind::TrafficDrop, at) {
            0.2
        } else {
            1.0
        };
        let base = self.cfg.users as f64 * self.cfg.sessions_per_user_day / 1440.0;
        let day = if self.incident_active(IncidentKind::Holiday, at) {
            1.0
        } else {
            diurnal(hour)
        };
        base * day * weekly(weekday) * growth * drop
    }

    fn pick_user(&mut self) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let x = self.rng.random::<f64>() * total;
        self.cumulative
            .partition_point(|&c| c <= x)
            .min(self.users.len() - 1)
    }

    fn start_sessions(&mut self) {
        let rate = self.session_rate(self.minute);
        let n = if rate > 0.0 {
            Poisson::new(rate).map_or(0.0, |p| p.sample(&mut self.rng)) as u64
        } else {
            0
        };
        for _ in 0..n {
            let start = self.minute + self.rng.random_range(0..MINUTE_MS);
            let user = self.pick_user();
            self.session(user, start);
        }
    }

    fn session(&mut self, user: usize, mut at: i64) {
        self.sessions += 1;
        let persona = &PERSONAS[self.users[user].persona];
        let journey = pick_journey(persona, self.rng.random::<f64>());
        let session_id = format!("s{}", self.sessions);
        let think = Exp::new(1.0 / 20_000.0).expect("valid rate");
        for (step, name) in journey.iter().enumerate() {
            if step > 0 && self.rng.random::<f64>() < persona.drop_off {
                break;
            }
            let ev = self.request(user, persona, name, at, &session_id);
            self.pending.push(ev);
            at += (think.sample(&mut self.rng) as i64).clamp(500, 120_000);
        }
    }

    fn request(
        &mut self,
        user: usize,
        persona: &Persona,
        name: &str,
        at: i64,
        session: &str,
    ) -> Event {
        let f = feature(name);
        let spike = if self.incident_active(IncidentKind::LatencySpike, at) {
            8.0
        } else {
            1.0
        };
        let drift = self
            .incident_progress(IncidentKind::LatencyDrift, at)
            .map_or(1.0, |p| 1.0 + 3.0 * p);
        let sigma = if self.incident_active(IncidentKind::LatencyJitter, at) {
            f.sigma * 3.0
        } else {
            f.sigma
        };
        let latency = LogNormal::new(f.median_ms.ln(), sigma)
            .expect("valid lognormal")
            .sample(&mut self.rng)
            * spike
            * drift;
        let burst = if self.incident_active(IncidentKind::ErrorBurst, at) {
            0.3
        } else {
            0.0
        };
        let (status, error) = if self.rng.random::<f64>() < f.error_rate + burst {
            match self.rng.random_range(0..10) {
                0..=5 => (500, Some("internal_error")),
                6..=8 => (504, Some("upstream_timeout")),
                _ => (422, Some("validation_error")),
            }
        } else {
            (200, None)
        };
        let mut properties = Map::new();
        properties.insert("plan".into(), Value::from(persona.plan));
        Event {
            timestamp: Timestamp(at),
            user_id: self.users[user].id.clone(),
            session_id: Some(session.to_string()),
            feature: f.name.to_string(),
            route: Some(f.route.to_string()),
            status: Some(status),
            latency_ms: Some((latency * 100.0).round() / 100.0),
            error: error.map(str::to_string),
            properties,
        }
    }

    /// Removes and returns pending events before `cutoff`, in time order.
    fn take_before(&mut self, cutoff: i64) -> Vec<Event> {
        self.pending.sort_by_key(|e| e.timestamp);
        let n = self.pending.partition_point(|e| e.timestamp.0 < cutoff);
        self.pending
            .drain(..n)
            .filter(|e| e.timestamp.0 >= self.cfg.start_ms)
            .collect()
    }
}

impl Iterator for Generator {
    /// The events whose time falls before the minute being generated, and that minute's start.
    type Item = (i64, Vec<Event>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.minute >= self.cfg.end_ms {
            self.done = true;
            let end = self.cfg.end_ms;
            let last = self.take_before(end);
            self.pending.clear();
            return Some((end, last));
        }
        let ready = self.take_before(self.minute);
        self.start_sessions();
        let at = self.minute;
        self.minute += MINUTE_MS;
        Some((at, ready))
    }
}

fn pick_persona(x: f64) -> usize {
    let mut acc = 0.0;
    for (i, p) in PERSONAS.iter().enumerate() {
        acc += p.share;
        if x < acc {
            return i;
        }
    }
    PERSONAS.len() - 1
}

fn pick_journey(p: &Persona, x: f64) -> &'static [&'static str] {
    let total: f64 = p.journeys.iter().map(|(w, _)| w).sum();
    let mut acc = 0.0;
    for (w, j) in p.journeys {
        acc += w / total;
        if x < acc {
            return j;
        }
    }
    p.journeys[p.journeys.len() - 1].1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(seed: u64) -> TrafficConfig {
        TrafficConfig {
            users: 100,
            start_ms: 1_795_780_800_000, // Friday 2026-11-27 12:00 UTC
            end_ms: 1_795_780_800_000 + 86_400_000,
            sessions_per_user_day: 3.0,
            growth_per_week: 0.0,
            incidents: vec![],
            seed,
        }
    }

    fn all(cfg: TrafficConfig) -> Vec<Event> {
        Generator::new(cfg).flat_map(|(_, evs)| evs).collect()
    }

    #[test]
    fn same_seed_same_traffic_and_ordered_within_window() {
        let a = all(config(7));
        assert_eq!(a, all(config(7)));
        assert_ne!(a, all(config(8)));
        assert!(a.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
        let c = config(7);
        assert!(a
            .iter()
            .all(|e| (c.start_ms..c.end_ms).contains(&e.timestamp.0)));
        // 100 users x 3 sessions/day x about 3 requests per session
        assert!((500..2500).contains(&a.len()), "{} events", a.len());
        for e in &a {
            e.validate().unwrap();
        }
    }

    #[test]
    fn incidents_change_the_traffic() {
        let mut cfg = config(1);
        cfg.users = 400;
        cfg.incidents = vec![
            "latency_spike@2h+2h".parse().unwrap(),
            "error_burst@10h+2h".parse().unwrap(),
        ];
        let events = all(cfg.clone());
        let window = |e: &Event, h: i64| {
            (cfg.start_ms + h * 3_600_000..cfg.start_ms + (h + 2) * 3_600_000)
                .contains(&e.timestamp.0)
        };
        let median = |evs: Vec<f64>| {
            let mut v = evs;
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let spike = median(
            events
                .iter()
                .filter(|e| window(e, 2))
                .filter_map(|e| e.latency_ms)
                .collect(),
        );
        let calm = median(
            events
                .iter()
                .filter(|e| window(e, 6))
                .filter_map(|e| e.latency_ms)
                .collect(),
        );
        assert!(spike > 4.0 * calm, "spike {spike} vs calm {calm}");
        let rate = |h| {
            let w: Vec<_> = events.iter().filter(|e| window(e, h)).collect();
            w.iter().filter(|e| e.is_error()).count() as f64 / w.len() as f64
        };
        assert!(
            rate(10) > 0.2 && rate(6) < 0.1,
            "burst {} calm {}",
            rate(10),
            rate(6)
        );
    }

    #[test]
    fn drift_jitter_and_holiday_shape_the_traffic() {
        let mut cfg = config(5);
        cfg.users = 400;
        cfg.incidents = vec![
            "latency_drift@1h+8h".parse().unwrap(),
            "latency_jitter@12h+4h".parse().unwrap(),
        ];
        let events = all(cfg.clone());
        let latencies = |from_h: f64, to_h: f64| {
            let (a, b) = (
                cfg.start_ms + (from_h * 3_600_000.0) as i64,
                cfg.start_ms + (to_h * 3_600_000.0) as i64,
            );
            let mut v: Vec<f64> = events
                .iter()
                .filter(|e| (a..b).contains(&e.timestamp.0))
                .filter_map(|e| e.latency_ms)
                .collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let q = |v: &[f64], q: f64| v[((v.len() - 1) as f64 * q) as usize];
        let (early, late) = (latencies(1.0, 2.0), latencies(7.0, 9.0));
        assert!(
            q(&late, 0.5) > 2.5 * q(&early, 0.5),
            "drift: {} then {}",
            q(&early, 0.5),
            q(&late, 0.5)
        );
        let (calm, jitter) = (latencies(18.0, 22.0), latencies(12.0, 16.0));
        let tail = |v: &[f64]| q(v, 0.95) / q(v, 0.5);
        assert!(
            tail(&jitter) > 3.0 * tail(&calm),
            "jitter: p95/p50 {} vs {}",
            tail(&jitter),
            tail(&calm)
        );
        // 02:00-05:00 UTC is 14 h-17 h after the start: quiet, unless the day is a holiday.
        let night = |cfg: TrafficConfig| {
            let (a, b) = (cfg.start_ms + 14 * 3_600_000, cfg.start_ms + 17 * 3_600_000);
            all(cfg)
                .iter()
                .filter(|e| (a..b).contains(&e.timestamp.0))
                .count() as f64
        };
        let mut holiday = config(5);
        holiday.users = 400;
        holiday.incidents = vec!["holiday@0h+1d".parse().unwrap()];
        let mut usual = holiday.clone();
        usual.incidents.clear();
        assert!(
            night(holiday.clone()) > 2.0 * night(usual.clone()),
            "holiday nights {} vs {}",
            night(holiday),
            night(usual)
        );
    }

    #[test]
    fn parses_incidents() {
        let i: Incident = "traffic_drop@1d+90m".parse().unwrap();
        assert_eq!(
            (i.kind, i.offset_ms, i.duration_ms),
            (IncidentKind::TrafficDrop, 86_400_000, 5_400_000)
        );
        assert!("meltdown@1h+1h".parse::<Incident>().is_err());
        for (name, kind) in IncidentKind::ALL {
            let i: Incident = format!("{name}@1h+1h").parse().unwrap();
            assert_eq!(i.kind, kind);
            assert_eq!(serde_json::to_value(kind).unwrap(), name);
        }
        assert!("latency_spike@1h".parse::<Incident>().is_err());
    }
}
