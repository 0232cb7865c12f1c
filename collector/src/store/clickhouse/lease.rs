//! The lease that lets one of several collectors run scheduled work, and the state it shares,
//! in ClickHouse tables. ClickHouse has no compare-and-set, so a lease is claimed by terms: when
//! a term's holder lets it expire, whoever sees that first inserts a claim for the next term,
//! waits `SETTLE` (longer than any claim takes to land after its check), and reads the term's
//! claims back; the earliest claim (then the smallest holder name) wins, the same answer for
//! every claimant. A collector that sees a live claim for the newest term does not claim.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;

use super::{quote, ClickHouseStore};
use crate::store::{SharedState, StoreError};

/// How long claimants wait for each other's claims before reading who won.
const SETTLE: Duration = Duration::from_millis(1_500);

/// Makes every version this process writes larger than its last.
static LAST_VERSION: AtomicU64 = AtomicU64::new(0);

#[derive(Deserialize, Debug)]
struct Claim {
    term: u64,
    holder: String,
    claimed: i64,
    until: i64,
}

impl ClickHouseStore {
    /// The claims of the newest term of lease `name`, winner first.
    fn claims(&self, name: &str, term: Option<u64>) -> Result<Vec<Claim>, StoreError> {
        let db = self.db();
        let term = term.map_or(
            format!(
                "(SELECT max(term) FROM {db}.leases WHERE name = {})",
                quote(name)
            ),
            |t| t.to_string(),
        );
        self.rows(&format!(
            "SELECT term, holder, min(claimed_ms) AS claimed, max(until_ms) AS until FROM {db}.leases \
             WHERE name = {} AND term = {term} GROUP BY term, holder ORDER BY claimed, holder",
            quote(name)
        ))
    }

    fn claim(&self, name: &str, c: &Claim) -> Result<(), StoreError> {
        let row = serde_json::json!({"name": name, "term": c.term, "holder": c.holder,
            "claimed_ms": c.claimed, "until_ms": c.until});
        self.insert("leases", &[row])
    }
}

impl SharedState for ClickHouseStore {
    fn hold_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let claims = self.claims(name, None)?;
        let term = match claims.first() {
            Some(w) if w.holder == holder && now < w.until => {
                let renewed = Claim {
                    until: now + ttl_ms,
                    holder: holder.to_string(),
                    ..*w
                };
                self.claim(name, &renewed)?;
                return Ok(true);
            }
            Some(w) if now < w.until => return Ok(false),
            Some(w) => w.term + 1,
            None => 1,
        };
        let mine = Claim {
            term,
            holder: holder.to_string(),
            claimed: now,
            until: now + ttl_ms,
        };
        self.claim(name, &mine)?;
        std::thread::sleep(SETTLE);
        let won = self
            .claims(name, Some(term))?
            .first()
            .is_some_and(|w| w.holder == holder);
        if won {
            tracing::info!(lease = name, term, holder, "lease taken");
        }
        Ok(won)
    }

    fn put_state(&self, scope: &str, value: Option<&str>) -> Result<(), StoreError> {
        // Microsecond-like: a later put (from any collector, clocks agreeing) has a larger one.
        let now = tda_schema::timestamp::now_ms().max(0) as u64 * 1000;
        let next = |last: u64| Some(now.max(last + 1));
        let last = LAST_VERSION
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, next)
            .unwrap_or(now);
        let version = now.max(last + 1);
        let row = serde_json::json!({"scope": scope, "version": version,
            "deleted": u8::from(value.is_none()), "value": value.unwrap_or("")});
        self.insert("state", &[row])
    }

    fn get_state(&self, scope: &str) -> Result<Option<(u64, String)>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            latest: u64,
            gone: u8,
            text: String,
        }
        let rows: Vec<Row> = self.rows(&format!(
            "SELECT max(version) AS latest, argMax(deleted, version) AS gone, \
             argMax(value, version) AS text FROM {}.state WHERE scope = {} HAVING count() > 0",
            self.db(),
            quote(scope)
        ))?;
        Ok(rows
            .into_iter()
            .find(|r| r.gone == 0)
            .map(|r| (r.latest, r.text)))
    }

    fn state_scopes(&self, prefix: &str) -> Result<Vec<(String, u64)>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            scope: String,
            latest: u64,
        }
        let rows: Vec<Row> = self.rows(&format!(
            "SELECT scope, max(version) AS latest FROM {}.state WHERE substring(scope, 1, {}) = {} \
             GROUP BY scope HAVING argMax(deleted, version) = 0 ORDER BY scope",
            self.db(),
            prefix.len(),
            quote(prefix)
        ))?;
        Ok(rows.into_iter().map(|r| (r.scope, r.latest)).collect())
    }
}
