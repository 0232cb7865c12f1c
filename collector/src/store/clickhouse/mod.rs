//! The ClickHouse backend, over ClickHouse's HTTP interface: versioned migrations create day-
//! partitioned MergeTree tables; a batch's events and samples are each one INSERT (one part,
//! all or nothing); materialized views record batch ids as the rows arrive, so a retried batch
//! is recognised. Works on ClickHouse 18.16 (Debian 12's) and later.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Map, Value};
use tda_schema::{Batch, Event, HostSample, Timestamp};

mod aggregate;
mod behavior;
mod lease;

use super::{Appended, Deleted, Pushdown, SharedState, Storage, StoreError};

/// Where the backend's tables live.
#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    /// HTTP interface base URL, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    /// Database (created when missing).
    pub database: String,
    /// User, when not `default`.
    pub user: Option<String>,
    /// Password, when the user has one.
    pub password: Option<String>,
    /// Longest a query may take.
    pub timeout: Duration,
}

/// The schema, one migration per version; each statement runs once, in order.
const MIGRATIONS: &[&[&str]] = &[&[
    "CREATE TABLE IF NOT EXISTS {db}.events (day Date, ts_ms Int64, agent String, batch_id String, \
     user_id String, session_id Nullable(String), feature String, route Nullable(String), \
     status Nullable(UInt16), latency_ms Nullable(Float64), error Nullable(String), properties String) \
     ENGINE = MergeTree() PARTITION BY day ORDER BY (feature, ts_ms, user_id)",
    "CREATE TABLE IF NOT EXISTS {db}.samples (day Date, ts_ms Int64, agent String, batch_id String, \
     sample String) ENGINE = MergeTree() PARTITION BY day ORDER BY (agent, ts_ms)",
    "CREATE TABLE IF NOT EXISTS {db}.batch_ids (batch_id String, kind String, received_ms Int64) \
     ENGINE = ReplacingMergeTree() ORDER BY (batch_id, kind)",
    "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.events_batch_ids TO {db}.batch_ids AS SELECT batch_id, \
     'events' AS kind, toInt64(toUInt32(now())) * 1000 AS received_ms FROM {db}.events GROUP BY batch_id",
    "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.samples_batch_ids TO {db}.batch_ids AS SELECT batch_id, \
     'samples' AS kind, toInt64(toUInt32(now())) * 1000 AS received_ms FROM {db}.samples GROUP BY batch_id",
], &[
    // Typed host and process figures, computed from the sample as it is inserted (and on
    // read for samples stored before), so aggregations run in ClickHouse.
    "ALTER TABLE {db}.samples \
     ADD COLUMN cpu_percent Float64 MATERIALIZED toFloat64(toFloat32(visitParamExtractFloat(sample, 'cpu_percent'))), \
     ADD COLUMN mem_used_bytes UInt64 MATERIALIZED visitParamExtractUInt(sample, 'mem_used_bytes'), \
     ADD COLUMN mem_total_bytes UInt64 MATERIALIZED visitParamExtractUInt(sample, 'mem_total_bytes'), \
     ADD COLUMN swap_used_bytes UInt64 MATERIALIZED visitParamExtractUInt(sample, 'swap_used_bytes'), \
     ADD COLUMN load1 Float64 MATERIALIZED toFloat64OrZero(extract(visitParamExtractRaw(sample, 'load'), '^\\\\[\\\\s*([^,\\\\]]+)')), \
     ADD COLUMN disk_read_bytes UInt64 MATERIALIZED visitParamExtractUInt(sample, 'disk_read_bytes'), \
     ADD COLUMN disk_written_bytes UInt64 MATERIALIZED visitParamExtractUInt(sample, 'disk_written_bytes'), \
     ADD COLUMN net_rx_bytes UInt64 MATERIALIZED visitParamExtractUInt(sample, 'net_rx_bytes'), \
     ADD COLUMN net_tx_bytes UInt64 MATERIALIZED visitParamExtractUInt(sample, 'net_tx_bytes'), \
     ADD COLUMN process String MATERIALIZED visitParamExtractRaw(sample, 'process'), \
     ADD COLUMN has_process UInt8 MATERIALIZED process NOT IN ('', 'null'), \
     ADD COLUMN process_cpu_percent Float64 MATERIALIZED toFloat64(toFloat32(visitParamExtractFloat(process, 'cpu_percent'))), \
     ADD COLUMN process_rss_bytes UInt64 MATERIALIZED visitParamExtractUInt(process, 'rss_bytes'), \
     ADD COLUMN process_threads UInt64 MATERIALIZED visitParamExtractUInt(process, 'threads'), \
     ADD COLUMN process_open_fds UInt64 MATERIALIZED visitParamExtractUInt(process, 'open_fds')",
], &[
    // Several collectors: the lease of scheduled work, and the state its holder shares.
    "CREATE TABLE IF NOT EXISTS {db}.leases (name String, term UInt64, holder String, claimed_ms Int64, \
     until_ms Int64) ENGINE = ReplacingMergeTree(until_ms) ORDER BY (name, term, holder)",
    "CREATE TABLE IF NOT EXISTS {db}.state (scope String, version UInt64, deleted UInt8, value String) \
     ENGINE = ReplacingMergeTree(version) ORDER BY scope",
]];

/// The ClickHouse store.
pub struct ClickHouseStore {
    cfg: ClickHouseConfig,
    client: reqwest::blocking::Client,
}

fn failed(what: &str, message: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("clickhouse {what}: {message}"))
}

/// A string as a ClickHouse literal.
pub(super) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn day_of(ms: i64) -> String {
    Timestamp(ms).to_rfc3339()[..10].to_string()
}

#[derive(Deserialize)]
struct EventRow {
    ts_ms: i64,
    user_id: String,
    session_id: Option<String>,
    feature: String,
    route: Option<String>,
    status: Option<u16>,
    latency_ms: Option<f64>,
    error: Option<String>,
    properties: String,
}

/// The order of event pages: time, then every column, so ties come in the same order each time.
const EVENT_ORDER: &str =
    "ts_ms, batch_id, user_id, feature, session_id, route, status, latency_ms, error, properties";

impl ClickHouseStore {
    /// Calls `visit` with each event where `cond` holds (then `tail`: ORDER BY, LIMIT), as it
    /// arrives; without `properties` they are left empty.
    fn events_where(
        &self,
        cond: &str,
        tail: &str,
        properties: bool,
        visit: &mut dyn FnMut(&Event),
    ) -> Result<(), StoreError> {
        let props = if properties {
            "properties"
        } else {
            "'' AS properties"
        };
        let q = format!(
            "SELECT ts_ms, user_id, session_id, feature, route, status, latency_ms, error, {props} \
             FROM {}.events WHERE {cond} {tail}",
            self.db()
        );
        self.each_row(&q, &mut |r: EventRow| {
            let properties: Map<String, Value> = match r.properties.as_str() {
                "" | "{}" => Map::new(),
                text => serde_json::from_str(text).unwrap_or_default(),
            };
            visit(&Event {
                timestamp: Timestamp(r.ts_ms),
                user_id: r.user_id,
                session_id: r.session_id,
                feature: r.feature,
                route: r.route,
                status: r.status,
                latency_ms: r.latency_ms,
                error: r.error,
                properties,
            });
        })
    }

    /// Connects, creates the database and runs the migrations it has not run yet.
    pub fn open(cfg: ClickHouseConfig) -> Result<Self, StoreError> {
        let client = tda_daemon::tls::blocking_client_builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| failed("client", e))?;
        let store = ClickHouseStore { cfg, client };
        store.execute(&format!("CREATE DATABASE IF NOT EXISTS {}", store.db()))?;
        store.migrate()?;
        Ok(store)
    }

    pub(super) fn db(&self) -> &str {
        &self.cfg.database
    }

    /// Runs one statement (`body` is sent after it, for INSERTs) and returns the answer.
    fn request(&self, query: &str, body: Vec<u8>) -> Result<String, StoreError> {
        let resp = self.send(query, body)?;
        resp.text().map_err(|e| failed("answer", e))
    }

    /// Sends one statement and returns the response once its status says it succeeded.
    fn send(&self, query: &str, body: Vec<u8>) -> Result<reqwest::blocking::Response, StoreError> {
        let mut req = self
            .client
            .post(&self.cfg.url)
            .query(&[
                ("query", query),
                ("output_format_json_quote_64bit_integers", "0"),
            ])
            .body(body);
        if let Some(u) = &self.cfg.user {
            req = req.header("X-ClickHouse-User", u);
        }
        if let Some(p) = &self.cfg.password {
            req = req.header("X-ClickHouse-Key", p);
        }
        let resp = req.send().map_err(|e| failed("request", e))?;
        if !resp.status().is_success() {
            let text = resp.text().unwrap_or_default();
            let first = query
                .split_whitespace()
                .take(6)
                .collect::<Vec<_>>()
                .join(" ");
            return Err(failed(&first, text.trim()));
        }
        Ok(resp)
    }

    pub(super) fn execute(&self, statement: &str) -> Result<String, StoreError> {
        self.request(statement, Vec::new())
    }

    /// Applies the migrations after the version the database records.
    fn migrate(&self) -> Result<(), StoreError> {
        let db = self.db().to_string();
        self.execute(&format!(
            "CREATE TABLE IF NOT EXISTS {db}.schema_version (version UInt32, applied_ms Int64) ENGINE = TinyLog"
        ))?;
        let current: u32 = self
            .execute(&format!("SELECT max(version) FROM {db}.schema_version"))?
            .trim()
            .parse()
            .unwrap_or(0);
        for (i, statements) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            for s in *statements {
                self.execute(&s.replace("{db}", &db))?;
            }
            let now = tda_schema::timestamp::now_ms();
            self.execute(&format!(
                "INSERT INTO {db}.schema_version VALUES ({}, {now})",
                i + 1
            ))?;
            tracing::info!(database = %db, version = i + 1, "clickhouse schema migrated");
        }
        Ok(())
    }

    fn seen(&self, batch_id: &str, kind: &str) -> Result<bool, StoreError> {
        let q = format!(
            "SELECT count() FROM {}.batch_ids WHERE batch_id = {} AND kind = {}",
            self.db(),
            quote(batch_id),
            quote(kind)
        );
        Ok(self.execute(&q)?.trim() != "0")
    }

    pub(super) fn insert(&self, table: &str, rows: &[Value]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut body = Vec::with_capacity(rows.len() * 200);
        for r in rows {
            serde_json::to_writer(&mut body, r).map_err(|e| failed("encode", e))?;
            body.push(b'\n');
        }
        let q = format!("INSERT INTO {}.{table} FORMAT JSONEachRow", self.db());
        self.request(&q, body).map(|_| ())
    }

    /// Each line of a `JSONEachRow` answer, parsed.
    pub(super) fn rows<T: for<'de> Deserialize<'de>>(
        &self,
        query: &str,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        self.each_row(query, &mut |r| out.push(r))?;
        Ok(out)
    }

    /// Calls `visit` with each row of a `JSONEachRow` answer as it arrives (the answer is never
    /// held whole).
    pub(super) fn each_row<T: for<'de> Deserialize<'de>>(
        &self,
        query: &str,
        visit: &mut dyn FnMut(T),
    ) -> Result<(), StoreError> {
        use std::io::BufRead;
        let resp = self.send(&format!("{query} FORMAT JSONEachRow"), Vec::new())?;
        for line in std::io::BufReader::with_capacity(1 << 16, resp).lines() {
            let line = line.map_err(|e| failed("answer", e))?;
            if !line.is_empty() {
                visit(serde_json::from_str(&line).map_err(|e| failed("row", e))?);
            }
        }
        Ok(())
    }

    /// `day` and `ts_ms` bounds of `[from, to)` (the day bounds, where inside ClickHouse's Date
    /// range, let it skip partitions).
    pub(super) fn range(from: i64, to: i64) -> String {
        const DATE_MAX_MS: i64 = 4_102_444_800_000; // 2100-01-01
        let mut cond = format!("ts_ms >= {from} AND ts_ms < {to}");
        if (0..DATE_MAX_MS).contains(&from) {
            cond += &format!(" AND day >= toDate({})", quote(&day_of(from)));
        }
        if (1..DATE_MAX_MS).contains(&to) {
            cond += &format!(" AND day <= toDate({})", quote(&day_of(to - 1)));
        }
        cond
    }
}

impl Storage for ClickHouseStore {
    fn append(&self, batch: &Batch) -> Result<Appended, StoreError> {
        if self.seen(&batch.batch_id, "events")? {
            return Ok(Appended::Duplicate);
        }
        let samples_seen = self.seen(&batch.batch_id, "samples")?;
        if !samples_seen {
            let rows: Vec<Value> = batch
                .samples
                .iter()
                .map(|s| {
                    json!({"day": day_of(s.timestamp.0), "ts_ms": s.timestamp.0, "agent": batch.agent_id,
                        "batch_id": batch.batch_id, "sample": serde_json::to_string(s).unwrap_or_default()})
                })
                .collect();
            self.insert("samples", &rows)?;
        }
        let rows: Vec<Value> = batch
            .events
            .iter()
            .map(|e| {
                json!({"day": day_of(e.timestamp.0), "ts_ms": e.timestamp.0, "agent": batch.agent_id,
                    "batch_id": batch.batch_id, "user_id": e.user_id, "session_id": e.session_id,
                    "feature": e.feature, "route": e.route, "status": e.status, "latency_ms": e.latency_ms,
                    "error": e.error, "properties": serde_json::to_string(&e.properties).unwrap_or_default()})
            })
            .collect();
        self.insert("events", &rows)?;
        if rows.is_empty() && samples_seen {
            return Ok(Appended::Duplicate);
        }
        Ok(Appended::Stored)
    }

    fn scan_events(
        &self,
        from: i64,
        to: i64,
        visit: &mut dyn FnMut(&Event),
    ) -> Result<(), StoreError> {
        self.events_where(&Self::range(from, to), "", true, visit)
    }

    fn scan_event_facts(
        &self,
        from: i64,
        to: i64,
        visit: &mut dyn FnMut(&Event),
    ) -> Result<(), StoreError> {
        self.events_where(&Self::range(from, to), "", false, visit)
    }

    fn scan_samples(
        &self,
        from: i64,
        to: i64,
        agent: Option<&str>,
        visit: &mut dyn FnMut(&str, &HostSample),
    ) -> Result<(), StoreError> {
        if to <= from {
            return Ok(());
        }
        #[derive(Deserialize)]
        struct Row {
            agent: String,
            sample: String,
        }
        let only = agent.map_or(String::new(), |a| format!(" AND agent = {}", quote(a)));
        let q = format!(
            "SELECT agent, sample FROM {}.samples WHERE {}{only}",
            self.db(),
            Self::range(from, to)
        );
        let mut bad = None;
        self.each_row(
            &q,
            &mut |r: Row| match serde_json::from_str::<HostSample>(&r.sample) {
                Ok(s) => visit(&r.agent, &s),
                Err(e) => bad = Some(failed("sample", e)),
            },
        )?;
        bad.map_or(Ok(()), Err)
    }

    fn pushdown(&self) -> Option<&dyn Pushdown> {
        Some(self)
    }

    fn shared(&self) -> Option<&dyn SharedState> {
        Some(self)
    }

    fn disk_bytes(&self) -> Result<u64, StoreError> {
        let q = format!(
            "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = {} AND active",
            quote(self.db())
        );
        Ok(self.execute(&q)?.trim().parse().unwrap_or(0))
    }

    /// Drops the day partitions wholly before `cutoff`'s day, and forgets batch ids received
    /// before it.
    fn delete_before(&self, cutoff: i64) -> Result<Deleted, StoreError> {
        #[derive(Deserialize)]
        struct Part {
            table: String,
            partition: String,
        }
        // A partition is a day, written `YYYY-MM-DD`: those sort as strings do.
        let q = format!(
            "SELECT DISTINCT table, partition FROM system.parts WHERE database = {} AND active \
             AND table IN ('events', 'samples') AND partition < {}",
            quote(self.db()),
            quote(&day_of(cutoff.max(0)))
        );
        let parts = self.rows::<Part>(&q)?;
        for p in &parts {
            self.execute(&format!(
                "ALTER TABLE {}.{} DROP PARTITION {}",
                self.db(),
                p.table,
                quote(&p.partition)
            ))?;
        }
        let old = format!(
            "SELECT count() FROM {}.batch_ids WHERE received_ms < {cutoff}",
            self.db()
        );
        let batch_ids: u64 = self.execute(&old)?.trim().parse().unwrap_or(0);
        if batch_ids > 0 {
            self.execute(&format!(
                "ALTER TABLE {}.batch_ids DELETE WHERE received_ms < {cutoff}",
                self.db()
            ))?;
        }
        Ok(Deleted {
            blocks: parts.len() as u64,
            batch_ids,
        })
    }
}

impl Pushdown for ClickHouseStore {
    fn first_events(
        &self,
        (from, to): (i64, i64),
        filter: &crate::store::Filter,
        n: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let cond = format!("{}{}", Self::range(from, to), aggregate::filter_sql(filter));
        let order = format!("ORDER BY {EVENT_ORDER} LIMIT {n}");
        let mut out = Vec::new();
        self.events_where(&cond, &order, true, &mut |e| out.push(e.clone()))?;
        Ok(out)
    }

    fn aggregate_events(
        &self,
        q: &super::aggregate::EventQuery,
    ) -> Result<Vec<super::aggregate::EventAggregate>, StoreError> {
        self.event_aggregates(q)
    }

    fn aggregate_agents(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<super::aggregate::AgentAggregate>, StoreError> {
        self.agent_aggregates(from, to)
    }

    fn aggregate_samples(
        &self,
        series: &str,
        range: (i64, i64, i64),
        agent: Option<&str>,
        quantiles: &[f64],
    ) -> Result<Vec<super::aggregate::SampleStep>, StoreError> {
        self.sample_steps(series, range, agent, quantiles)
    }

    fn funnel(
        &self,
        q: &super::aggregate::FunnelQuery,
    ) -> Result<Option<super::aggregate::FunnelCounts>, StoreError> {
        self.funnel_of(q)
    }

    fn retention(
        &self,
        range: (i64, i64),
        filter: &crate::store::Filter,
        period: super::aggregate::Period,
    ) -> Result<super::aggregate::RetentionCounts, StoreError> {
        self.retention_of(range, filter, period)
    }
}
