//! Shipping: sends queued batches to the collector with a bearer token, retrying with backoff.

use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use tda_daemon::retry::{self, Backoff};
use tokio::sync::watch;

use crate::batch::Closed;
use crate::counters::{add, Counters};
use crate::settings::Live;
use crate::spool::Spool;

/// Retry delays: from 200 ms, doubling, at most 30 s.
pub const BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(200),
    cap: Duration::from_secs(30),
};
/// While backing off, the collector's `/healthz` is asked this often; once it answers, sending
/// resumes at once (so an agent is back within about this long of the collector).
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// The same while the spool is full (dropping or refusing): every second of delay costs events.
pub const PROBE_EVERY_WHEN_FULL: Duration = Duration::from_millis(250);

/// What one send attempt came to.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// The collector stored the batch.
    Stored,
    /// A transient failure; try again, not before the given delay if the collector named one.
    Retry(Option<Duration>),
    /// The collector could not be reached; try again as soon as it answers.
    Unreachable,
    /// The collector refused the batch as invalid; sending it again cannot succeed.
    Rejected(String),
}

/// Sends batches to one collector.
pub struct Shipper {
    live: Arc<Live>,
    /// The batches URL whose answers named the binary batch in `Accept-Post`: binary bodies go
    /// only there; until one does, they are sent as JSON (an older collector reads every body
    /// as JSON).
    binary_at: std::sync::Mutex<Option<String>>,
}

impl Shipper {
    /// A shipper to the collector the live settings name (read again for every batch).
    pub fn new(live: Arc<Live>) -> Self {
        Shipper {
            live,
            binary_at: Default::default(),
        }
    }

    /// Whether the collector at `url` has said it takes binary batches.
    fn takes_binary(&self, url: &str) -> bool {
        let at = self.binary_at.lock().unwrap_or_else(|p| p.into_inner());
        at.as_deref() == Some(url)
    }

    /// Remembers whether the answer from `url` named the binary batch.
    fn learn(&self, url: &str, headers: &reqwest::header::HeaderMap) {
        let named = headers
            .get_all("accept-post")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| {
                t.trim()
                    .eq_ignore_ascii_case(tda_blocks::batch::CONTENT_TYPE)
            });
        if named {
            *self.binary_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(url.to_string());
        } else {
            self.forget_binary(url);
        }
    }

    /// Sends JSON to `url` until one of its answers names the binary batch again.
    fn forget_binary(&self, url: &str) {
        let mut at = self.binary_at.lock().unwrap_or_else(|p| p.into_inner());
        if at.as_deref() == Some(url) {
            *at = None;
        }
    }

    /// The body, content type and content encoding to send `batch` to `url` in.
    fn body_for(
        &self,
        url: &str,
        batch: &Closed,
    ) -> Option<(bytes::Bytes, &'static str, &'static str)> {
        if self.takes_binary(url) && tda_blocks::batch::is_binary(&batch.body) {
            let binary = tda_blocks::batch::CONTENT_TYPE;
            return Some((batch.body.clone(), binary, "identity"));
        }
        let json = crate::batch::as_json(&batch.body)?;
        Some((json, "application/json", "zstd"))
    }

    /// One attempt to send one batch.
    pub async fn send(&self, batch: &Closed) -> Outcome {
        let target = self.live.target();
        let url = format!("{}/v1/batches", target.url.trim_end_matches('/'));
        let Some((body, content_type, encoding)) = self.body_for(&url, batch) else {
            return Outcome::Rejected("the spooled batch cannot be read".into());
        };
        let mut req = self
            .live
            .client()
            .post(&url)
            .timeout(Duration::from_secs(30))
            .header(CONTENT_TYPE, content_type)
            .header(CONTENT_ENCODING, encoding)
            .body(body);
        if let Some(t) = &target.token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let error = tda_daemon::tls::with_causes(&e);
                tracing::warn!(batch_id = %batch.batch_id, %error, "collector unreachable");
                return Outcome::Unreachable;
            }
        };
        let status = resp.status();
        if status.is_success() {
            self.learn(&url, resp.headers());
            return Outcome::Stored;
        }
        let retry_after = retry::retry_after(resp.headers());
        let text = resp.text().await.unwrap_or_default();
        if content_type == tda_blocks::batch::CONTENT_TYPE && matches!(status.as_u16(), 400 | 415) {
            // Perhaps a collector that does not take binary batches answers this URL now (an
            // older one behind the same address): send as JSON until an answer names them.
            self.forget_binary(&url);
            tracing::warn!(batch_id = %batch.batch_id, %status, body = %text, "collector refused a binary batch; sending it again as JSON");
            return Outcome::Retry(None);
        }
        if retry::retryable(status.as_u16()) {
            tracing::warn!(batch_id = %batch.batch_id, %status, body = %text, "collector failed, will retry");
            Outcome::Retry(retry_after)
        } else {
            Outcome::Rejected(format!("{status}: {text}"))
        }
    }
}

impl Shipper {
    /// Whether the collector answers `GET /healthz` with 200 (a cheap probe while backing off).
    pub async fn healthy(&self) -> bool {
        let target = self.live.target();
        let url = format!("{}/healthz", target.url.trim_end_matches('/'));
        // Its own connection, closed after the answer: a probe must not leave a pooled
        // connection for the batch to reuse (a proxy that serves one request per connection
        // would then cut every batch while every probe succeeds).
        let probe = self
            .live
            .client()
            .get(&url)
            .header(reqwest::header::CONNECTION, "close")
            .timeout(Duration::from_secs(1));
        matches!(probe.send().await, Ok(r) if r.status().is_success())
    }

    /// Waits `delay` before the next attempt, cut short once the collector answers its health
    /// probe or `stop` turns true.
    async fn back_off(&self, delay: Duration, full: bool, stop: &mut watch::Receiver<bool>) {
        let every = if full {
            PROBE_EVERY_WHEN_FULL
        } else {
            PROBE_EVERY
        };
        let until = tokio::time::Instant::now() + delay;
        loop {
            let now = tokio::time::Instant::now();
            if now >= until {
                return;
            }
            // Jittered (±25 %): a fleet waiting for the same collector does not probe in step,
            // and no periodic pattern of the agent's own requests stays in phase with the probes.
            let jittered = every.mul_f64(rand::rng().random_range(0.75..1.25));
            tokio::select! {
                _ = tokio::time::sleep((until - now).min(jittered)) => {}
                _ = stop.changed() => return,
            }
            if tokio::time::Instant::now() < until && self.healthy().await {
                tracing::info!("collector answers again; resending");
                return;
            }
        }
    }
}

/// A batch the collector refused as invalid: split in halves, to be sent again, until the events
/// it refuses are alone; a refused batch of one event (or one that cannot be split) is
/// quarantined, its events counted. A poison event costs itself, not its batch.
fn refused(spool: &Spool, counters: &Counters, seq: u64, batch: &Closed, why: &str) {
    if let Some((a, b)) = crate::batch::halves(batch) {
        tracing::warn!(batch_id = %batch.batch_id, events = batch.events, error = %why, "collector refused the batch; sending it again in halves to find what it refuses");
        match spool.split(seq, &[a, b]) {
            Ok(()) => {
                add(&counters.batches_split, 1);
                return;
            }
            Err(e) => {
                tracing::error!(batch_id = %batch.batch_id, error = %e, "cannot split the batch in the spool")
            }
        }
    }
    tracing::error!(batch_id = %batch.batch_id, events = batch.events, error = %why, "collector refused the batch; quarantined in the spool");
    spool.quarantine(seq, why);
}

/// Sends spooled batches in order until `stop` turns true and the spool is empty (or `stop`
/// turns true while the collector is failing: what is left stays spooled for the next start).
pub async fn run(
    shipper: Shipper,
    spool: Arc<Spool>,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
    beat: tda_daemon::service::Beat,
) {
    let mut attempt = 0u32;
    loop {
        beat.tick();
        let Some((entry, batch)) = tokio::task::block_in_place(|| spool.front()) else {
            if *stop.borrow() {
                return;
            }
            beat.idle();
            tokio::select! {
                _ = spool.ready.notified() => {}
                _ = stop.changed() => {}
            }
            continue;
        };
        let started = std::time::Instant::now();
        match shipper.send(&batch).await {
            Outcome::Stored => {
                attempt = 0;
                let o = &counters.observed;
                o.send_seconds.observe(started.elapsed().as_secs_f64());
                o.batch_events.observe(batch.events as f64);
                o.batch_bytes.observe(batch.body.len() as f64);
                spool.remove(entry.seq);
                add(&counters.batches_sent, 1);
                add(&counters.events_sent, batch.events);
                add(&counters.bytes_sent, batch.body.len() as u64);
            }
            Outcome::Rejected(why) => refused(&spool, &counters, entry.seq, &batch, &why),
            failed @ (Outcome::Retry(_) | Outcome::Unreachable) => {
                add(&counters.send_retries, 1);
                if *stop.borrow() {
                    return;
                }
                let after = match failed {
                    Outcome::Retry(after) => after,
                    _ => None,
                };
                let delay = BACKOFF.delay(attempt).max(after.unwrap_or_default());
                attempt = attempt.saturating_add(1);
                beat.idle();
                if failed == Outcome::Unreachable {
                    // Down: come back as soon as it answers its health probe.
                    shipper.back_off(delay, spool.full(), &mut stop).await;
                } else {
                    // Up but failing, or naming its delay (429, 507): plain backoff.
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
    }
}
