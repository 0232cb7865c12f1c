//! Who may do what: the bearer tokens of each scope (kept as digests, compared in constant
//! time), the per-token rate limits, and the one check every route goes through.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

use hyper::StatusCode;
use tda_daemon::Refusal;
use tda_schema::config::LimitsConfig;

/// The dashboard's live event stream, the one route that takes a read token as `?token=`.
pub const LIVE_STREAM: &str = "/api/v1/live";

/// What a credential lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Send batches and read the agent settings (agents).
    Ingest,
    /// Read analytics (`GET /api/v1/…`, the dashboard's data).
    Read,
    /// Change state: profiles, reloads, compaction, silences, reports on request.
    Admin,
}

impl Scope {
    /// The scope's name in answers.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }
}

/// A set of bearer tokens (of one scope).
pub struct Tokens(HashSet<[u8; 32]>);

/// A token's SHA-256: only these are kept in memory, and a presented token is hashed before it
/// is compared, so comparisons take the same time wherever tokens differ.
fn digest(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// A token set; empty strings are ignored.
    pub fn new(tokens: impl IntoIterator<Item = String>) -> Self {
        Tokens(
            tokens
                .into_iter()
                .filter(|t| !t.is_empty())
                .map(|t| digest(&t))
                .collect(),
        )
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `presented` is one of the tokens: its digest is compared with every stored one,
    /// each in constant time.
    pub fn allows(&self, presented: &str) -> bool {
        let wanted = digest(presented);
        self.0
            .iter()
            .fold(false, |ok, t| ok | constant_time_eq(t, &wanted))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The tokens of every scope in force.
pub struct Credentials {
    /// Agents' tokens.
    pub ingest: Tokens,
    /// Administrators' tokens.
    pub admin: Tokens,
    /// Readers' tokens (empty: reading is open).
    pub read: Tokens,
}

impl Credentials {
    /// Checks the request's credential for `scope`: `401` without a token or with one this
    /// collector does not know, `403` with a token of another scope, `429` past the token's
    /// rate (`limits`). Admin tokens also read; reading is open while no read tokens are
    /// configured; a read token may come as `?token=` on the live event stream only (a
    /// browser's EventSource cannot send headers; anywhere else a token in the URL would end
    /// up in proxy and access logs).
    pub fn authorize<B>(
        &self,
        req: &hyper::Request<B>,
        scope: Scope,
        (rates, limits): (&RateLimits, &LimitsConfig),
    ) -> Result<(), Refusal> {
        if scope == Scope::Read && self.read.is_empty() {
            return Ok(());
        }
        let query = tda_daemon::query(req);
        let presented = match scope {
            Scope::Read if req.uri().path() == LIVE_STREAM => {
                tda_daemon::bearer(req).or(query.get("token").map(String::as_str))
            }
            _ => tda_daemon::bearer(req),
        };
        let Some(token) = presented else {
            let why = format!("a bearer token with the {} scope is required", scope.name());
            return Err(Refusal::new(StatusCode::UNAUTHORIZED, why));
        };
        let granted = match scope {
            Scope::Ingest => self.ingest.allows(token),
            Scope::Read => self.read.allows(token) || self.admin.allows(token),
            Scope::Admin => self.admin.allows(token),
        };
        if granted {
            let (rate, burst) = (limits.requests_per_second_per_token, limits.burst_per_token);
            return rates
                .take(token, rate, burst, Instant::now())
                .map_err(|wait| {
                    let why =
                        format!("more than {rate} requests per second for this token; retry later");
                    Refusal::new(StatusCode::TOO_MANY_REQUESTS, why).retry_after(wait)
                });
        }
        let known =
            self.ingest.allows(token) || self.read.allows(token) || self.admin.allows(token);
        let (status, why) = if known {
            (
                StatusCode::FORBIDDEN,
                format!("this token lacks the {} scope", scope.name()),
            )
        } else {
            (StatusCode::UNAUTHORIZED, "unknown bearer token".to_string())
        };
        Err(Refusal::new(status, why))
    }
}

/// Buckets not touched for this long are forgotten (they would be full again anyway).
const IDLE_SECS: f64 = 600.0;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Per-token rate limits: a token bucket per credential (kept by the token's digest), refilled
/// at `limits.requests_per_second_per_token` up to `limits.burst_per_token`.
#[derive(Default)]
pub struct RateLimits {
    buckets: Mutex<HashMap<[u8; 32], Bucket>>,
}

impl RateLimits {
    /// Takes one request from `token`'s bucket: `Ok`, or `Err(seconds)` to wait before one is
    /// free. A `rate` of 0 allows everything.
    pub fn take(&self, token: &str, rate: f64, burst: u32, now: Instant) -> Result<(), u64> {
        if rate <= 0.0 {
            return Ok(());
        }
        let key = digest(token);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 10_000 {
            buckets.retain(|_, b| now.duration_since(b.at).as_secs_f64() < IDLE_SECS);
        }
        let burst = f64::from(burst.max(1));
        let b = buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn tokens_match_exactly() {
        let t = Tokens::new(["abc".to_string(), String::new()]);
        assert_eq!(t.len(), 1);
        assert!(t.allows("abc"));
        assert!(!t.allows("abd") && !t.allows("ab") && !t.allows(""));
    }

    #[test]
    fn a_burst_then_the_rate() {
        let limits = RateLimits::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limits.take("a", 2.0, 3, t0), Ok(()));
        }
        assert_eq!(limits.take("a", 2.0, 3, t0), Err(1), "burst spent");
        assert_eq!(
            limits.take("b", 2.0, 3, t0),
            Ok(()),
            "each token has its own"
        );
        let later = t0 + Duration::from_millis(500);
        assert_eq!(
            limits.take("a", 2.0, 3, later),
            Ok(()),
            "half a second gives one"
        );
        assert_eq!(limits.take("a", 2.0, 3, later), Err(1));
        assert_eq!(
            limits.take("a", 0.1, 3, later),
            Err(10),
            "a slow rate waits longer"
        );
        assert_eq!(limits.take("a", 0.0, 3, later), Ok(()), "0 is no limit");
    }
}
