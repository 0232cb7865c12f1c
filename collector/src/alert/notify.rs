//! Notifications: the Alertmanager webhook payload (version 4) or a custom body template, the
//! body Alertmanager's `/api/v2/alerts` takes, when a group is due (`group_wait`,
//! `group_interval`, `repeat_interval`), and delivery of the outbox: retried with backoff on 5xx,
//! 408, 429, timeouts and network errors, dropped (and logged) on other 4xx.

use std::collections::BTreeMap;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tda_daemon::retry::{self, Backoff};
use tda_schema::alerting::RouteSettings;
use tda_schema::timestamp::now_ms;
use tda_schema::Timestamp;

use super::route::Labels;
use super::rule::Phase;
use super::store::{GroupState, Outgoing, StoredAlert};
use super::template;
use tda_schema::timestamp::DAY_MS;

/// The end time Alertmanager's webhook gives alerts still firing.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
/// A notification that could not be delivered for this long is given up.
const GIVE_UP_MS: i64 = DAY_MS;

/// A stable short hash of some text (16 hex digits of SHA-256).
pub fn short_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An alert's fingerprint: the hash of its sorted labels.
pub fn fingerprint(labels: &Labels) -> String {
    let text: String = labels.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    short_hash(&text)
}

/// Whether a notified member is firing (else resolved).
fn firing(a: &StoredAlert) -> bool {
    a.state.phase == Phase::Firing
}

fn rfc3339(ms: Option<i64>) -> String {
    ms.map_or_else(|| ZERO_TIME.to_string(), |t| Timestamp(t).to_rfc3339())
}

/// Where a receiver can look an alert up.
fn generator_url(external: &str, a: &StoredAlert) -> String {
    format!(
        "{}/api/v1/alerts?profile={}&rule={}",
        external.trim_end_matches('/'),
        a.profile,
        form_urlencoded::byte_serialize(a.rule.as_bytes()).collect::<String>()
    )
}

/// Labels (or annotations) every member shares.
fn common(members: &[&StoredAlert], pick: fn(&StoredAlert) -> &Labels) -> Labels {
    let Some(first) = members.first() else {
        return Labels::new();
    };
    pick(first)
        .iter()
        .filter(|(k, v)| members.iter().all(|m| pick(m).get(*k) == Some(v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The content of one group notification.
pub struct GroupNotice<'a> {
    /// Receiver name.
    pub receiver: &'a str,
    /// Group key.
    pub key: &'a str,
    /// Group labels.
    pub labels: &'a Labels,
    /// Its alerts (firing first, then resolved).
    pub members: Vec<&'a StoredAlert>,
    /// `alerting.external_url`.
    pub external_url: &'a str,
}

impl GroupNotice<'_> {
    /// `firing` when any member fires, else `resolved`.
    pub fn status(&self) -> &'static str {
        if self.members.iter().any(|m| firing(m)) {
            "firing"
        } else {
            "resolved"
        }
    }

    /// The Alertmanager webhook payload, version 4, with at most `max_alerts` alerts (0: all).
    pub fn payload_v4(&self, max_alerts: usize) -> Value {
        let shown = if max_alerts == 0 {
            self.members.len()
        } else {
            max_alerts.min(self.members.len())
        };
        let alerts: Vec<Value> = self.members[..shown]
            .iter()
            .map(|a| {
                json!({
                    "status": if firing(a) { "firing" } else { "resolved" },
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "startsAt": rfc3339(a.state.fired_at),
                    "endsAt": if firing(a) { ZERO_TIME.to_string() } else { rfc3339(a.state.resolved_at) },
                    "generatorURL": generator_url(self.external_url, a),
                    "fingerprint": fingerprint(&a.labels),
                })
            })
            .collect();
        json!({
            "version": "4",
            "groupKey": self.key,
            "truncatedAlerts": self.members.len() - shown,
            "status": self.status(),
            "receiver": self.receiver,
            "groupLabels": self.labels,
            "commonLabels": common(&self.members, |a| &a.labels),
            "commonAnnotations": common(&self.members, |a| &a.annotations),
            "externalURL": self.external_url,
            "alerts": alerts,
        })
    }

    /// A custom body: the template with the group's values filled in (JSON-escaped).
    pub fn templated(&self, template_text: &str) -> String {
        let mut values = BTreeMap::from([
            ("status".to_string(), self.status().to_string()),
            ("receiver".to_string(), self.receiver.to_string()),
            ("group_key".to_string(), self.key.to_string()),
            ("external_url".to_string(), self.external_url.to_string()),
        ]);
        let lines: Vec<String> = self
            .members
            .iter()
            .map(|a| {
                let summary = a.annotations.get("summary").cloned().unwrap_or_default();
                let state = if firing(a) { "FIRING" } else { "RESOLVED" };
                format!("[{state}] {} {summary}", a.rule)
            })
            .collect();
        values.insert("alerts".into(), lines.join("\n"));
        for (k, v) in common(&self.members, |a| &a.labels) {
            values.insert(format!("labels.{k}"), v);
        }
        for (k, v) in common(&self.members, |a| &a.annotations) {
            values.insert(format!("annotations.{k}"), v);
        }
        template::render(template_text, &values, template::json_string)
    }

    /// The body of Alertmanager's `POST /api/v2/alerts`: firing alerts end after `resend_ms`
    /// unless sent again (so a collector that stops does not leave them firing for ever).
    pub fn alertmanager_body(&self, now: i64, resend_ms: i64) -> Value {
        let alerts: Vec<Value> = self
            .members
            .iter()
            .map(|a| {
                let ends = if firing(a) {
                    now + resend_ms
                } else {
                    a.state.resolved_at.unwrap_or(now)
                };
                json!({
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "startsAt": rfc3339(a.state.fired_at),
                    "endsAt": rfc3339(Some(ends)),
                    "generatorURL": generator_url(self.external_url, a),
                })
            })
            .collect();
        Value::Array(alerts)
    }

    /// A hash of which alerts the group holds and whether each fires.
    pub fn content_hash(&self) -> String {
        let text: String = self
            .members
            .iter()
            .map(|a| format!("{}:{}\n", fingerprint(&a.labels), firing(a)))
            .collect();
        short_hash(&text)
    }
}

/// Whether a group is due for a notification at `now`.
pub fn due(state: &GroupState, hash: &str, any_firing: bool, s: &RouteSettings, now: i64) -> bool {
    let ms = |d: tda_schema::duration::HumanDuration| d.0.as_millis() as i64;
    match state.last_sent {
        None => now - state.first_seen >= ms(s.group_wait),
        Some(last) if hash != state.last_hash => now - last >= ms(s.group_interval),
        Some(last) => any_firing && now - last >= ms(s.repeat_interval),
    }
}

/// `X-TDA-Signature: sha256=<hex>` of the body under a secret.
pub fn signature(secret: &str, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Counters of deliveries.
#[derive(Debug, Default)]
pub struct DeliveryCounters {
    /// Delivered (2xx).
    pub sent: std::sync::atomic::AtomicU64,
    /// Attempts that failed and will be retried.
    pub retried: std::sync::atomic::AtomicU64,
    /// Given up (refused with a 4xx, or undeliverable for a day).
    pub dropped: std::sync::atomic::AtomicU64,
}

/// What one attempt came to.
enum Attempt {
    Delivered,
    Retry(Option<i64>),
    Refused(String),
}

async fn attempt(client: &reqwest::Client, o: &Outgoing) -> Attempt {
    let mut req = client
        .post(&o.url)
        .timeout(Duration::from_millis(o.timeout_ms))
        .body(o.body.clone());
    for (k, v) in &o.headers {
        req = req.header(k, v);
    }
    match req.send().await {
        Ok(resp) if resp.status().is_success() => Attempt::Delivered,
        Ok(resp) => {
            let code = resp.status().as_u16();
            let retry_after = retry::retry_after(resp.headers()).map(|d| d.as_millis() as i64);
            if retry::retryable(code) {
                Attempt::Retry(retry_after)
            } else {
                Attempt::Refused(format!("HTTP {code}"))
            }
        }
        Err(_) => Attempt::Retry(None),
    }
}

/// Delays between delivery attempts: from 1 s, doubling, at most a minute.
const BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(1),
    cap: Duration::from_secs(60),
};

/// The delay after `attempts` failures, ms.
fn backoff(attempts: u32) -> i64 {
    BACKOFF.delay(attempts.saturating_sub(1)).as_millis() as i64
}

/// Delivers each notification of the outbox that is due now, in order, calling `settled`
/// after each one delivered, dropped or rescheduled (the leader then shares its state).
pub async fn deliver_due(
    alerting: &super::Alerting,
    client: &reqwest::Client,
    after_each: impl Fn(),
) {
    let (store, counters) = (&alerting.store, &alerting.counters);
    let due = match store.outbox() {
        Ok(list) => list,
        Err(e) => {
            tracing::error!(error = %e, "alert outbox unreadable");
            return;
        }
    };
    for (id, mut o) in due.into_iter().filter(|(_, o)| o.next_attempt <= now_ms()) {
        let outcome = attempt(client, &o).await;
        let settled = match outcome {
            Attempt::Delivered => {
                counters
                    .sent
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(receiver = %o.receiver, dedup_key = %o.dedup_key, attempts = o.attempts + 1, "notification delivered");
                store.settle(id, None)
            }
            Attempt::Refused(why) => {
                counters
                    .dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(receiver = %o.receiver, dedup_key = %o.dedup_key, reason = %why, "notification refused; dropped");
                store.settle(id, None)
            }
            Attempt::Retry(_) if now_ms() - o.created_at > GIVE_UP_MS => {
                counters
                    .dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(receiver = %o.receiver, dedup_key = %o.dedup_key, attempts = o.attempts, "notification undeliverable for a day; dropped");
                store.settle(id, None)
            }
            Attempt::Retry(after) => {
                counters
                    .retried
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                o.attempts += 1;
                o.next_attempt = now_ms() + after.unwrap_or_else(|| backoff(o.attempts));
                if o.attempts == 1 || o.attempts % 10 == 0 {
                    tracing::warn!(receiver = %o.receiver, dedup_key = %o.dedup_key, attempts = o.attempts, "notification failed; will retry");
                }
                store.settle(id, Some(&o))
            }
        };
        if let Err(e) = settled {
            tracing::error!(error = %e, "alert outbox not updated");
        }
        after_each();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::rule::AlertState;

    fn alert(rule: &str, phase: Phase) -> StoredAlert {
        StoredAlert {
            profile: "web".into(),
            rule: rule.into(),
            labels: Labels::from([
                ("alertname".into(), rule.into()),
                ("profile".into(), "web".into()),
            ]),
            annotations: Labels::from([("summary".into(), format!("{rule} \"bad\""))]),
            state: AlertState {
                phase,
                fired_at: Some(1_795_860_000_000),
                resolved_at: (phase == Phase::Resolved).then_some(1_795_860_060_000),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn the_webhook_payload_is_alertmanagers_version_4() {
        let (a, b) = (
            alert("HighErrors", Phase::Firing),
            alert("Slow", Phase::Resolved),
        );
        let labels = Labels::from([("profile".into(), "web".into())]);
        let n = GroupNotice {
            receiver: "ops",
            key: "ops/{}:{profile=\"web\"}",
            labels: &labels,
            members: vec![&a, &b],
            external_url: "http://tda:7300",
        };
        let p = n.payload_v4(1);
        assert_eq!(p["version"], "4");
        assert_eq!(p["status"], "firing");
        assert_eq!(p["truncatedAlerts"], 1);
        assert_eq!(p["commonLabels"], json!({"profile": "web"}));
        assert_eq!(p["alerts"][0]["endsAt"], ZERO_TIME);
        assert_eq!(p["alerts"][0]["startsAt"], "2026-11-28T10:00:00Z");
        assert_eq!(p["alerts"][0]["fingerprint"].as_str().unwrap().len(), 16);
        assert_eq!(
            p["alerts"][0]["generatorURL"],
            "http://tda:7300/api/v1/alerts?profile=web&rule=HighErrors"
        );
        let body = n.templated("{\"text\": \"{{ status }}: {{ alerts }}\"}");
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            parsed["text"],
            "firing: [FIRING] HighErrors HighErrors \"bad\"\n[RESOLVED] Slow Slow \"bad\""
        );
        let am = n.alertmanager_body(1_795_860_100_000, 60_000);
        assert_eq!(am[0]["endsAt"], "2026-11-28T10:02:40Z");
        assert_eq!(am[1]["endsAt"], "2026-11-28T10:01:00Z");
    }

    #[test]
    fn groups_wait_then_notify_changes_and_repeat() {
        let s = RouteSettings {
            receiver: "ops".into(),
            group_by: vec![],
            group_wait: tda_schema::duration::HumanDuration::secs(30),
            group_interval: tda_schema::duration::HumanDuration::secs(300),
            repeat_interval: tda_schema::duration::HumanDuration::secs(3600),
        };
        let fresh = GroupState {
            first_seen: 0,
            ..Default::default()
        };
        assert!(!due(&fresh, "h", true, &s, 29_000));
        assert!(due(&fresh, "h", true, &s, 30_000));
        let sent = GroupState {
            first_seen: 0,
            last_sent: Some(30_000),
            last_hash: "h".into(),
            sequence: 1,
        };
        assert!(
            !due(&sent, "h", true, &s, 300_000),
            "unchanged: not before repeat_interval"
        );
        assert!(due(&sent, "h", true, &s, 3_630_000));
        assert!(
            !due(&sent, "h2", true, &s, 300_000),
            "changed: waits group_interval"
        );
        assert!(due(&sent, "h2", true, &s, 330_000));
        assert!(
            !due(&sent, "h", false, &s, 9_000_000),
            "nothing firing: no repeats"
        );
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", "what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
