//! Performance statistics: latency percentiles, error rates and top errors, host and process
//! resources per agent, and a one-word system-health summary with its reasons.

pub use tda_schema::answers::{AgentStats, ErrorCount, Health, HealthStatus, PerformanceStats};

use std::collections::{BTreeMap, HashMap};

impl Fold for PerformanceAcc {
    fn event(&mut self, e: &Event) {
        self.add_event(e);
    }

    fn rollup(&mut self, r: &Rollup) {
        self.add_rollup(r);
    }
}

#[cfg(test)]
use tda_schema::Timestamp;
use tda_schema::{Event, HostSample, ProcessSample};

use super::{Latency, Range};
use crate::sketch::quantile::Sketch;
use crate::store::aggregate::{HostFigures, ProcessFigures};
use crate::store::rollup::Rollup;
use crate::store::Fold;

/// Error rate above which health is `degraded`.
pub const ERROR_RATE_DEGRADED: f64 = 0.05;
/// Error rate above which health is `critical`.
pub const ERROR_RATE_CRITICAL: f64 = 0.20;
/// p95 latency above which health is `degraded`, milliseconds.
pub const P95_DEGRADED_MS: f64 = 2_000.0;
/// Latest CPU or memory use above which a host makes health `degraded`, percent.
pub const RESOURCE_DEGRADED_PERCENT: f64 = 90.0;
/// How many top error types are listed.
pub const TOP_ERRORS: usize = 10;

#[derive(Default)]
struct AgentAcc {
    samples: u64,
    latest: Option<HostSample>,
    host: HostFigures,
    process: ProcessFigures,
    process_samples: u64,
}

impl AgentAcc {
    fn add(&mut self, s: &HostSample) {
        self.samples += 1;
        let h = &mut self.host;
        h.cpu_percent += f64::from(s.cpu_percent);
        h.mem_used_bytes += s.mem_used_bytes as f64;
        h.mem_used_percent += percent(s.mem_used_bytes, s.mem_total_bytes);
        h.swap_used_bytes += s.swap_used_bytes as f64;
        h.load1 += s.load[0];
        h.disk_read_bytes += s.disk_read_bytes as f64;
        h.disk_written_bytes += s.disk_written_bytes as f64;
        h.net_rx_bytes += s.net_rx_bytes as f64;
        h.net_tx_bytes += s.net_tx_bytes as f64;
        if let Some(p) = &s.process {
            self.add_process(p);
        }
        if self
            .latest
            .as_ref()
            .is_none_or(|l| l.timestamp <= s.timestamp)
        {
            self.latest = Some(s.clone());
        }
    }

    fn add_process(&mut self, p: &ProcessSample) {
        self.process_samples += 1;
        self.process.cpu_percent += f64::from(p.cpu_percent);
        self.process.rss_bytes += p.rss_bytes as f64;
        self.process.threads += f64::from(p.threads);
        self.process.open_fds += f64::from(p.open_fds);
    }

    fn finish(self, agent_id: String) -> Option<AgentStats> {
        let latest = self.latest?;
        let n = self.samples.max(1) as f64;
        let h = self.host;
        let average = HostFigures {
            cpu_percent: h.cpu_percent / n,
            mem_used_bytes: h.mem_used_bytes / n,
            mem_used_percent: h.mem_used_percent / n,
            swap_used_bytes: h.swap_used_bytes / n,
            load1: h.load1 / n,
            disk_read_bytes: h.disk_read_bytes / n,
            disk_written_bytes: h.disk_written_bytes / n,
            net_rx_bytes: h.net_rx_bytes / n,
            net_tx_bytes: h.net_tx_bytes / n,
        };
        let pn = self.process_samples as f64;
        let p = self.process;
        let process_average = (self.process_samples > 0).then(|| ProcessFigures {
            cpu_percent: p.cpu_percent / pn,
            rss_bytes: p.rss_bytes / pn,
            threads: p.threads / pn,
            open_fds: p.open_fds / pn,
        });
        Some(AgentStats {
            agent_id,
            samples: self.samples,
            last_seen: latest.timestamp.to_rfc3339(),
            latest,
            average,
            process_average,
        })
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// Folds events and samples into [`PerformanceStats`].
pub struct PerformanceAcc {
    range: (i64, i64),
    requests: u64,
    errors: u64,
    latency: Sketch,
    by_feature: HashMap<String, Sketch>,
    error_kinds: HashMap<String, u64>,
    agents: BTreeMap<String, AgentAcc>,
}

impl PerformanceAcc {
    /// An accumulator for `[from, to)`.
    pub fn new(from: i64, to: i64) -> Self {
        PerformanceAcc {
            range: (from, to),
            requests: 0,
            errors: 0,
            latency: Sketch::new(),
            by_feature: HashMap::new(),
            error_kinds: HashMap::new(),
            agents: BTreeMap::new(),
        }
    }

    /// Counts one event.
    pub fn add_event(&mut self, e: &Event) {
        self.requests += 1;
        if let Some(kind) = e.error_kind() {
            self.errors += 1;
            *self.error_kinds.entry(kind).or_default() += 1;
        }
        if let Some(l) = e.latency_ms {
            self.latency.add(l);
            self.by_feature.entry(e.feature.clone()).or_default().add(l);
        }
    }

    /// Adds the rollup of (part of) a whole hour inside the range.
    pub fn add_rollup(&mut self, r: &Rollup) {
        self.requests += r.events;
        for (kind, n) in &r.error_kinds {
            self.errors += n;
            *self.error_kinds.entry(kind.clone()).or_default() += n;
        }
        for (name, f) in r.features.iter().filter(|(_, f)| f.latency.count() > 0) {
            self.latency.merge(&f.latency);
            self.by_feature
                .entry(name.clone())
                .or_default()
                .merge(&f.latency);
        }
    }

    /// Counts one sample of an agent.
    pub fn add_sample(&mut self, agent_id: &str, s: &HostSample) {
        if !self.agents.contains_key(agent_id) {
            self.agents
                .insert(agent_id.to_string(), AgentAcc::default());
        }
        if let Some(a) = self.agents.get_mut(agent_id) {
            a.add(s);
        }
    }

    /// The finished statistics.
    pub fn finish(self) -> PerformanceStats {
        let error_rate = if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        };
        let mut top_errors: Vec<ErrorCount> = self
            .error_kinds
            .into_iter()
            .map(|(error, count)| ErrorCount { error, count })
            .collect();
        top_errors.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.error.cmp(&b.error)));
        top_errors.truncate(TOP_ERRORS);
        let agents: Vec<AgentStats> = self
            .agents
            .into_iter()
            .filter_map(|(id, a)| a.finish(id))
            .collect();
        let latency_ms = super::latency_of_sketch(&self.latency);
        let health = health(self.requests, error_rate, &latency_ms, &agents);
        PerformanceStats {
            kind: "performance".into(),
            range: Range::new(self.range.0, self.range.1),
            requests: self.requests,
            errors: self.errors,
            error_rate,
            latency_ms,
            latency_by_feature: self
                .by_feature
                .into_iter()
                .map(|(f, s)| (f, super::latency_of_sketch(&s)))
                .collect(),
            top_errors,
            agents,
            health,
        }
    }
}

fn health(requests: u64, error_rate: f64, latency: &Latency, agents: &[AgentStats]) -> Health {
    if requests == 0 && agents.is_empty() {
        return Health {
            status: HealthStatus::NoData,
            reasons: vec!["no events or samples in range".into()],
        };
    }
    let mut reasons = Vec::new();
    let mut critical = false;
    if error_rate > ERROR_RATE_DEGRADED {
        critical |= error_rate > ERROR_RATE_CRITICAL;
        reasons.push(format!("error rate {:.1} %", error_rate * 100.0));
    }
    if let Some(p95) = latency.p95.filter(|p| *p > P95_DEGRADED_MS) {
        reasons.push(format!("p95 latency {p95:.0} ms"));
    }
    for a in agents {
        let cpu = f64::from(a.latest.cpu_percent);
        let mem = percent(a.latest.mem_used_bytes, a.latest.mem_total_bytes);
        if cpu > RESOURCE_DEGRADED_PERCENT {
            reasons.push(format!("{}: CPU {cpu:.0} %", a.agent_id));
        }
        if mem > RESOURCE_DEGRADED_PERCENT {
            reasons.push(format!("{}: memory {mem:.0} %", a.agent_id));
        }
    }
    let status = match (critical, reasons.is_empty()) {
        (true, _) => HealthStatus::Critical,
        (false, true) => HealthStatus::Ok,
        (false, false) => HealthStatus::Degraded,
    };
    Health { status, reasons }
}

/// Performance stats over `[from, to)`: events (whole hours from rollups) and host samples.
pub fn compute(
    store: &dyn crate::store::Storage,
    from: i64,
    to: i64,
) -> Result<PerformanceStats, crate::store::StoreError> {
    if let Some(stats) = pushed_down(store, from, to)? {
        return Ok(stats);
    }
    let mut acc = PerformanceAcc::new(from, to);
    crate::store::fold_range(store, from, to, &mut acc)?;
    store.scan_samples(from, to, None, &mut |agent, s| acc.add_sample(agent, s))?;
    Ok(acc.finish())
}

/// The statistics computed by the backend, when it aggregates itself.
fn pushed_down(
    store: &dyn crate::store::Storage,
    from: i64,
    to: i64,
) -> Result<Option<PerformanceStats>, crate::store::StoreError> {
    use crate::store::aggregate::{EventQuery, Group};
    let filter = crate::store::Filter::default();
    let query = |group| EventQuery {
        from,
        to,
        filter: &filter,
        group,
        quantiles: &super::QUANTILES,
    };
    let Some(store) = store.pushdown() else {
        return Ok(None);
    };
    let all = store.aggregate_events(&query(Group::All))?;
    let mut acc = PerformanceAcc::new(from, to);
    let all = all.into_iter().next();
    acc.requests = all.as_ref().map_or(0, |a| a.requests);
    acc.errors = all.as_ref().map_or(0, |a| a.errors);
    let latency = super::latency_of_summary(&all.map(|a| a.latency).unwrap_or_default());
    let by_feature: BTreeMap<String, Latency> = store
        .aggregate_events(&query(Group::Feature))?
        .into_iter()
        .filter(|f| f.latency.count > 0)
        .map(|f| (f.key, super::latency_of_summary(&f.latency)))
        .collect();
    let kinds = EventQuery {
        quantiles: &[],
        ..query(Group::ErrorKind)
    };
    for k in store.aggregate_events(&kinds)? {
        acc.error_kinds.insert(k.key, k.requests);
    }
    let agents = store.aggregate_agents(from, to)?;
    for a in agents {
        acc.agents.insert(
            a.agent,
            AgentAcc {
                samples: a.samples,
                latest: Some(a.latest),
                host: a.host_sums,
                process: a.process_sums,
                process_samples: a.process_samples,
            },
        );
    }
    let mut stats = acc.finish();
    stats.latency_ms = latency;
    stats.latency_by_feature = by_feature;
    stats.health = health(
        stats.requests,
        stats.error_rate,
        &stats.latency_ms,
        &stats.agents,
    );
    Ok(Some(stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_860_000_000;

    fn ev(status: u16, error: Option<&str>, latency: f64) -> Event {
        serde_json::from_value(serde_json::json!({
            "timestamp": T0, "user_id": "u", "feature": "generate", "status": status,
            "error": error, "latency_ms": latency
        }))
        .unwrap()
    }

    fn sample(ts: i64, cpu: f32, mem_used: u64) -> HostSample {
        HostSample {
            timestamp: Timestamp(ts),
            cpu_percent: cpu,
            cpu_per_core: vec![cpu],
            mem_total_bytes: 1000,
            mem_used_bytes: mem_used,
            swap_total_bytes: 0,
            swap_used_bytes: 0,
            load: [0.5, 0.4, 0.3],
            disk_total_bytes: 100,
            disk_available_bytes: 50,
            disk_read_bytes: 10,
            disk_written_bytes: 20,
            net_rx_bytes: 1,
            net_tx_bytes: 2,
            net_rx_packets: 0,
            net_tx_packets: 0,
            net_rx_errors: 0,
            net_tx_errors: 0,
            process: None,
        }
    }

    #[test]
    fn error_rate_top_errors_and_health() {
        let mut acc = PerformanceAcc::new(T0, T0 + 1);
        for _ in 0..8 {
            acc.add_event(&ev(200, None, 10.0));
        }
        acc.add_event(&ev(503, None, 10.0));
        acc.add_event(&ev(500, Some("internal_error"), 10.0));
        let s = acc.finish();
        assert_eq!((s.requests, s.errors), (10, 2));
        assert!((s.error_rate - 0.2).abs() < 1e-12);
        assert_eq!(
            s.top_errors,
            vec![
                ErrorCount {
                    error: "http_503".into(),
                    count: 1
                },
                ErrorCount {
                    error: "internal_error".into(),
                    count: 1
                },
            ]
        );
        assert_eq!(s.health.status, HealthStatus::Degraded);
        assert_eq!(s.health.reasons, vec!["error rate 20.0 %".to_string()]);
    }

    #[test]
    fn agent_latest_and_averages() {
        let mut acc = PerformanceAcc::new(T0, T0 + 10_000);
        acc.add_sample("web-1", &sample(T0 + 2000, 30.0, 400));
        acc.add_sample("web-1", &sample(T0 + 1000, 10.0, 200));
        let s = acc.finish();
        let a = &s.agents[0];
        assert_eq!((a.agent_id.as_str(), a.samples), ("web-1", 2));
        assert_eq!(a.latest.cpu_percent, 30.0);
        assert_eq!(a.average.cpu_percent, 20.0);
        assert_eq!(a.average.mem_used_percent, 30.0);
        assert_eq!(s.health.status, HealthStatus::Ok);
        assert_eq!(
            PerformanceAcc::new(0, 1).finish().health.status,
            HealthStatus::NoData
        );
    }
}
