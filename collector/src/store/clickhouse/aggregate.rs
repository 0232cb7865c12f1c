//! Aggregations pushed down to ClickHouse: the collector sends one GROUP BY query and reads one
//! row per group, never the events or samples themselves.

use std::collections::HashMap;

use serde::Deserialize;

use super::{quote, ClickHouseStore};
use crate::sketch::quantile::{self, Sketch};
use crate::store::aggregate::{
    AgentAggregate, EventAggregate, EventQuery, Group, SampleStep, Summary,
};
use crate::store::aggregate::{HostFigures, ProcessFigures};
use crate::store::Filter;
use crate::store::StoreError;

/// The failure flag and the usable latency of an event, as SQL.
/// Only the columns aggregations read: the properties are large and read only by filters.
const EVENT_COLUMNS: &str = "ts_ms, user_id, feature, status, error, \
     isNotNull(error) OR ifNull(status, 0) >= 500 AS failed, \
     ifNull(latency_ms, -1) AS l, l >= 0 AND isFinite(l) AS l_ok";

/// SQL for the values' count, sum and extremes of `value` where `ok`.
fn summary_sql(value: &str, ok: &str) -> String {
    format!(
        "countIf({ok}) AS n, sumIf({value}, {ok}) AS total, minIf({value}, {ok}) AS low, \
         maxIf({value}, {ok}) AS high"
    )
}

#[derive(Deserialize)]
struct SummaryRow {
    n: u64,
    total: f64,
    low: f64,
    high: f64,
}

impl SummaryRow {
    /// The summary, with the quantiles read from the group's sketch.
    fn summary(self, sketch: Option<&Sketch>, quantiles: &[f64]) -> Summary {
        let quantiles = match sketch {
            Some(s) if self.n > 0 => quantiles.iter().filter_map(|q| s.quantile(*q)).collect(),
            _ => Vec::new(),
        };
        Summary {
            count: self.n,
            sum: self.total,
            min: self.low,
            max: self.high,
            quantiles,
        }
    }
}

/// Per group key, the quantile sketch of `value` where `ok`, from its bucket counts computed in
/// ClickHouse (the sketch the embedded store keeps: the same buckets, the same 1 %). `source`
/// is a FROM clause that ends in a WHERE condition.
fn sketches(
    store: &ClickHouseStore,
    (source, key): (&str, &str),
    (value, ok): (&str, &str),
) -> Result<HashMap<String, Sketch>, StoreError> {
    #[derive(Deserialize)]
    struct Bucket {
        k: String,
        b: i32,
        c: u64,
    }
    let sql = format!(
        "SELECT toString({key}) AS k, if({v} < {zero:?}, {zeros}, toInt32(ceil(log({v}) / {lg:?}))) AS b, \
         count() AS c FROM {source} AND ({ok}) AND {v} >= 0 AND isFinite({v}) GROUP BY k, b",
        v = format!("toFloat64({value})"),
        zero = quantile::ZERO,
        zeros = i32::MIN,
        lg = quantile::log_gamma(),
    );
    let mut buckets: HashMap<String, Vec<(i32, u64)>> = HashMap::new();
    store.each_row(&sql, &mut |r: Bucket| {
        buckets.entry(r.k).or_default().push((r.b, r.c))
    })?;
    Ok(buckets
        .into_iter()
        .map(|(k, list)| (k, Sketch::from_buckets(list, i32::MIN)))
        .collect())
}

/// The events filter as SQL conditions (after the range).
pub(super) fn filter_sql(filter: &Filter) -> String {
    let mut c = String::new();
    if let Some(f) = &filter.feature {
        c += &format!(" AND feature = {}", quote(f));
    }
    if let Some(u) = &filter.user {
        c += &format!(" AND user_id = {}", quote(u));
    }
    if let Some(s) = filter.status {
        c += &format!(" AND status = {s}");
    }
    // A string property is stored as its JSON text; another value as its JSON text too.
    for (k, v) in &filter.labels {
        let as_string = serde_json::to_string(v).unwrap_or_default();
        c += &format!(
            " AND visitParamExtractRaw(properties, {}) IN ({}, {})",
            quote(k),
            quote(&as_string),
            quote(v)
        );
    }
    c
}

fn group_sql(group: Group) -> (String, &'static str) {
    match group {
        Group::All => ("''".into(), ""),
        Group::Feature => ("feature".into(), ""),
        Group::ErrorKind => (
            "ifNull(error, concat('http_', toString(status)))".into(),
            " AND failed",
        ),
        Group::Step { origin, width } => (
            format!("toString({origin} + intDiv(ts_ms - {origin}, {width}) * {width})"),
            "",
        ),
    }
}

impl ClickHouseStore {
    pub(super) fn event_aggregates(
        &self,
        q: &EventQuery,
    ) -> Result<Vec<EventAggregate>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            k: String,
            requests: u64,
            errors: u64,
            users: u64,
            #[serde(flatten)]
            latency: SummaryRow,
        }
        if q.to <= q.from {
            return Ok(Vec::new());
        }
        let (key, only) = group_sql(q.group);
        let source = format!(
            "(SELECT {EVENT_COLUMNS} FROM {db}.events WHERE {range}{filter}) WHERE 1{only}",
            db = self.db(),
            range = Self::range(q.from, q.to),
            filter = filter_sql(q.filter),
        );
        let sql = format!(
            "SELECT toString({key}) AS k, count() AS requests, toUInt64(sum(failed)) AS errors, \
             uniqExact(user_id) AS users, {} FROM {source} GROUP BY k ORDER BY k",
            summary_sql("l", "l_ok")
        );
        let sketched = if q.quantiles.is_empty() {
            HashMap::new()
        } else {
            sketches(self, (&source, &key), ("l", "l_ok"))?
        };
        Ok(self
            .rows::<Row>(&sql)?
            .into_iter()
            .map(|r| EventAggregate {
                latency: r.latency.summary(sketched.get(&r.k), q.quantiles),
                key: r.k,
                requests: r.requests,
                errors: r.errors,
                users: r.users,
            })
            .collect())
    }

    pub(super) fn agent_aggregates(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<AgentAggregate>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            agent: String,
            samples: u64,
            latest: String,
            cpu: f64,
            mem: f64,
            mem_pct: f64,
            swap: f64,
            load1: f64,
            disk_r: f64,
            disk_w: f64,
            rx: f64,
            tx: f64,
            procs: u64,
            p_cpu: f64,
            p_rss: f64,
            p_threads: f64,
            p_fds: f64,
        }
        if to <= from {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT agent, count() AS samples, argMax(sample, ts_ms) AS latest, sum(cpu_percent) AS cpu, \
             toFloat64(sum(mem_used_bytes)) AS mem, sum(if(mem_total_bytes = 0, 0, mem_used_bytes * 100 / mem_total_bytes)) AS mem_pct, \
             toFloat64(sum(swap_used_bytes)) AS swap, sum(load1) AS load1, toFloat64(sum(disk_read_bytes)) AS disk_r, \
             toFloat64(sum(disk_written_bytes)) AS disk_w, toFloat64(sum(net_rx_bytes)) AS rx, toFloat64(sum(net_tx_bytes)) AS tx, \
             toUInt64(sum(has_process)) AS procs, sumIf(process_cpu_percent, has_process) AS p_cpu, \
             toFloat64(sumIf(process_rss_bytes, has_process)) AS p_rss, toFloat64(sumIf(process_threads, has_process)) AS p_threads, \
             toFloat64(sumIf(process_open_fds, has_process)) AS p_fds \
             FROM {}.samples WHERE {} GROUP BY agent ORDER BY agent",
            self.db(),
            Self::range(from, to)
        );
        self.rows::<Row>(&sql)?
            .into_iter()
            .map(|r| {
                let latest = serde_json::from_str(&r.latest).map_err(|e| {
                    StoreError::Backend(format!("clickhouse sample of {}: {e}", r.agent))
                })?;
                Ok(AgentAggregate {
                    agent: r.agent,
                    samples: r.samples,
                    latest,
                    host_sums: HostFigures {
                        cpu_percent: r.cpu,
                        mem_used_bytes: r.mem,
                        mem_used_percent: r.mem_pct,
                        swap_used_bytes: r.swap,
                        load1: r.load1,
                        disk_read_bytes: r.disk_r,
                        disk_written_bytes: r.disk_w,
                        net_rx_bytes: r.rx,
                        net_tx_bytes: r.tx,
                    },
                    process_samples: r.procs,
                    process_sums: ProcessFigures {
                        cpu_percent: r.p_cpu,
                        rss_bytes: r.p_rss,
                        threads: r.p_threads,
                        open_fds: r.p_fds,
                    },
                })
            })
            .collect()
    }

    pub(super) fn sample_steps(
        &self,
        series: &str,
        (from, to, width): (i64, i64, i64),
        agent: Option<&str>,
        quantiles: &[f64],
    ) -> Result<Vec<SampleStep>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            k: i64,
            #[serde(flatten)]
            values: SummaryRow,
        }
        let unknown = || StoreError::Invalid(format!("no sample series `{series}`"));
        if !crate::store::SAMPLE_SERIES.contains(&series) {
            return Err(unknown());
        }
        let (column, ok) = match series.split_once('.') {
            Some(("host", name)) => (name.to_string(), "1".to_string()),
            Some(("process", name)) => (format!("process_{name}"), "has_process".to_string()),
            _ => return Err(unknown()),
        };
        if to <= from {
            return Ok(Vec::new());
        }
        let only = agent.map_or(String::new(), |a| format!(" AND agent = {}", quote(a)));
        let value = format!("toFloat64({column})");
        let key = format!("{from} + intDiv(ts_ms - {from}, {width}) * {width}");
        let source = format!(
            "{}.samples WHERE {}{only}",
            self.db(),
            Self::range(from, to)
        );
        let sql = format!(
            "SELECT {key} AS k, {} FROM {source} GROUP BY k ORDER BY k",
            summary_sql(&value, &ok)
        );
        let sketched = if quantiles.is_empty() {
            HashMap::new()
        } else {
            sketches(self, (&source, &key), (&value, &ok))?
        };
        Ok(self
            .rows::<Row>(&sql)?
            .into_iter()
            .map(|r| SampleStep {
                step: r.k,
                values: r.values.summary(sketched.get(&r.k.to_string()), quantiles),
            })
            .collect())
    }
}
