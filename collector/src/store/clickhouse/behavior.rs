//! Funnels and retention computed in ClickHouse: each user's events become arrays (one GROUP BY
//! user), array functions follow each entry through the steps, and only per-step counts and
//! medians, or per-period counts, come back. The same rules as the collector's own (see
//! `behavior::funnels` and `behavior::retention`), checked equal by the ClickHouse tests.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::aggregate::filter_sql;
use super::{quote, ClickHouseStore};
use crate::store::aggregate::{
    FunnelCounts, FunnelMode as Mode, FunnelQuery, Period, RetentionCounts,
};
use crate::store::Filter;
use crate::store::StoreError;
use tda_schema::timestamp::DAY_MS;

/// The group key of every user's row in the totals.
const ALL: &str = "\u{1}all";

/// Each user's events in time order as arrays `ts`, `fs` (feature) and `vs` (breakdown value).
fn user_arrays(store: &ClickHouseStore, q: &FunnelQuery, only_steps: bool) -> String {
    let value = match q.breakdown {
        Some(key) => {
            let raw = format!("visitParamExtractRaw(properties, {})", quote(key));
            format!(
                "if({raw} = '', '(none)', if(substring({raw}, 1, 1) = '\"', \
                 visitParamExtractString(properties, {k}), {raw}))",
                k = quote(key)
            )
        }
        None => "''".into(),
    };
    let steps = if only_steps {
        let list: Vec<String> = q.steps.iter().map(|s| quote(s)).collect();
        format!(" AND feature IN ({})", list.join(", "))
    } else {
        String::new()
    };
    format!(
        "SELECT user_id, arraySort(groupArray((ts_ms, feature, {value}))) AS ev, \
         arrayMap(x -> x.1, ev) AS ts, arrayMap(x -> x.2, ev) AS fs, arrayMap(x -> x.3, ev) AS vs \
         FROM {}.events WHERE {}{}{steps} GROUP BY user_id",
        store.db(),
        ClickHouseStore::range(q.from, q.to),
        filter_sql(q.filter)
    )
}

/// The index (1-based, 0: not reached) of step `k` (0-based, k >= 1) after step `k - 1`.
fn next_step(q: &FunnelQuery, k: usize) -> String {
    let (prev, step, w) = (format!("i{}", k - 1), quote(&q.steps[k]), q.window_ms);
    match q.mode {
        Mode::Strict => format!(
            "if({prev} = 0 OR {prev} >= length(fs), 0, if(fs[{prev} + 1] = {step} AND \
             ts[{prev} + 1] - ts[i0] <= {w}, {prev} + 1, 0))"
        ),
        _ => format!(
            "if({prev} = 0, 0, arrayFirstIndex((t, f, j) -> j > {prev} AND f = {step} AND \
             t - ts[i0] <= {w}, ts, fs, arrayEnumerate(ts)))"
        ),
    }
}

/// The funnel query: per group (each breakdown value, and all users), the users at each step
/// and the median time of each step after the first.
fn funnel_sql(store: &ClickHouseStore, q: &FunnelQuery) -> String {
    let n = q.steps.len();
    let mut sql = format!(
        "SELECT user_id, ts, fs, vs, i0 FROM ({}) ARRAY JOIN arrayFilter(j -> fs[j] = {}, \
         arrayEnumerate(fs)) AS i0",
        user_arrays(store, q, q.mode == Mode::Ordered),
        quote(&q.steps[0])
    );
    for k in 1..n {
        sql = format!("SELECT *, {} AS i{k} FROM ({sql})", next_step(q, k));
    }
    let level: Vec<String> = (1..n).map(|k| format!("(i{k} > 0)")).collect();
    let times: Vec<String> = (1..n)
        .map(|k| format!("if(i{k} > 0, ts[i{k}] - ts[i0], 0)"))
        .collect();
    // Each user's best entry: the furthest, then the first.
    let best = format!(
        "SELECT user_id, argMin(tuple(level, times, vs[i0]), (-level, i0)) AS b FROM \
         (SELECT user_id, vs, i0, 1 {plus} AS level, [{times}] AS times FROM ({sql})) GROUP BY user_id",
        plus = level.iter().map(|l| format!("+ {l}")).collect::<String>(),
        times = if times.is_empty() { "toInt64(0)".into() } else { times.join(", ") },
    );
    let per_step: Vec<String> = (0..n)
        .map(|k| {
            let reached = format!("tupleElement(b, 1) >= {}", k + 1);
            if k == 0 {
                format!("toUInt64(countIf({reached})) AS u0, toInt64(0) AS m0")
            } else {
                format!(
                    "toUInt64(countIf({reached})) AS u{k}, \
                     arraySort(groupArrayIf(arrayElement(tupleElement(b, 2), {k}), {reached})) AS t{k}, length(t{k}) AS n{k}, \
                     if(n{k} = 0, -1, if(n{k} % 2 = 1, t{k}[intDiv(n{k}, 2) + 1], \
                     intDiv(t{k}[intDiv(n{k}, 2)] + t{k}[intDiv(n{k}, 2) + 1], 2))) AS m{k}"
                )
            }
        })
        .collect();
    format!(
        "SELECT g, [{users}] AS users, [{medians}] AS medians FROM (SELECT g, {per_step} FROM \
         (SELECT b, arrayJoin([{all}, tupleElement(b, 3)]) AS g FROM ({best})) GROUP BY g) ORDER BY g",
        users = (0..n).map(|k| format!("u{k}")).collect::<Vec<_>>().join(", "),
        medians = (0..n).map(|k| format!("m{k}")).collect::<Vec<_>>().join(", "),
        per_step = per_step.join(", "),
        all = quote(ALL),
    )
}

impl ClickHouseStore {
    pub(super) fn funnel_of(&self, q: &FunnelQuery) -> Result<Option<FunnelCounts>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            g: String,
            users: Vec<u64>,
            medians: Vec<i64>,
        }
        if q.mode == Mode::Unordered || q.steps.is_empty() {
            return Ok(None);
        }
        let rows: Vec<Row> = if q.to <= q.from {
            Vec::new()
        } else {
            self.rows(&funnel_sql(self, q))?
        };
        let counts = |r: &Row| {
            r.users
                .iter()
                .zip(&r.medians)
                .map(|(u, m)| (*u, (*m >= 0).then_some(*m)))
                .collect()
        };
        let mut funnel = FunnelCounts {
            steps: vec![(0, None); q.steps.len()],
            breakdown: BTreeMap::new(),
        };
        for r in &rows {
            if r.g == ALL {
                funnel.steps = counts(r);
            } else if q.breakdown.is_some() {
                funnel.breakdown.insert(r.g.clone(), counts(r));
            }
        }
        Ok(Some(funnel))
    }
}

/// A period's index as SQL over `ts_ms` (as `Period::index`).
fn period_sql(period: Period, ts: &str) -> String {
    match period {
        Period::Day => format!("intDiv({ts}, {DAY_MS})"),
        Period::Week => format!("intDiv({ts} - {}, {})", 4 * DAY_MS, 7 * DAY_MS),
    }
}

impl ClickHouseStore {
    pub(super) fn retention_of(
        &self,
        (from, to): (i64, i64),
        filter: &Filter,
        period: Period,
    ) -> Result<RetentionCounts, StoreError> {
        #[derive(Deserialize)]
        struct Cell {
            c: i64,
            p: i64,
            active: u64,
            returning: u64,
            leaving: u64,
        }
        #[derive(Deserialize)]
        struct Sticky {
            n: u64,
            users: u64,
        }
        #[derive(Deserialize)]
        struct Recent {
            dau: u64,
            wau: u64,
            mau: u64,
        }
        let source = format!(
            "{}.events WHERE {}{}",
            self.db(),
            Self::range(from, to),
            filter_sql(filter)
        );
        let cells: Vec<Cell> = if to <= from {
            Vec::new()
        } else {
            self.rows(&format!(
                "SELECT ps[1] AS c, p, count() AS active, \
                 countIf(idx > 1 AND ps[idx - 1] = p - 1) AS returning, \
                 countIf(NOT (idx < length(ps) AND ps[idx + 1] = p + 1)) AS leaving \
                 FROM (SELECT user_id, arraySort(groupUniqArray({})) AS ps FROM {source} GROUP BY user_id) \
                 ARRAY JOIN ps AS p, arrayEnumerate(ps) AS idx GROUP BY c, p",
                period_sql(period, "ts_ms")
            ))?
        };
        let lo = cells.iter().map(|c| c.c).min().unwrap_or(0);
        let hi = cells.iter().map(|c| c.p).max().unwrap_or(-1);
        let n = (hi - lo + 1).max(0) as usize;
        let mut cohort: Vec<Vec<u64>> = (0..n).map(|c| vec![0; n - c]).collect();
        let (mut returning, mut dormant) = (vec![0; n], vec![0; n]);
        for cell in &cells {
            let (c, i) = ((cell.c - lo) as usize, (cell.p - lo) as usize);
            cohort[c][i - c] += cell.active;
            returning[i] += cell.returning;
            if i + 1 < n {
                dormant[i + 1] += cell.leaving;
            }
        }
        let sticky: Vec<Sticky> = self.rows(&format!(
            "SELECT least(days, 7) AS n, count() AS users FROM (SELECT user_id, {} AS w, \
             uniqExact(intDiv(ts_ms, {DAY_MS})) AS days FROM {source} GROUP BY user_id, w) GROUP BY n",
            period_sql(Period::Week, &format!("intDiv(ts_ms, {DAY_MS}) * {DAY_MS}"))
        ))?;
        let recent: Vec<Recent> = self.rows(&format!(
            "SELECT countIf(last >= {d}) AS dau, countIf(last >= {w}) AS wau, countIf(last >= {m}) AS mau \
             FROM (SELECT max(ts_ms) AS last FROM {source} GROUP BY user_id)",
            d = to - DAY_MS,
            w = to - 7 * DAY_MS,
            m = to - 30 * DAY_MS
        ))?;
        let r = recent.first();
        Ok(RetentionCounts {
            lo,
            cohort,
            returning,
            dormant,
            stickiness: sticky.iter().map(|s| (s.n as u8, s.users)).collect(),
            active_users: r.map_or((0, 0, 0), |r| (r.dau, r.wau, r.mau)),
        })
    }
}
