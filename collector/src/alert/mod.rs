//! Alerting: every `alerting.evaluation_interval`, each profile's `[[alert]]` rules are evaluated
//! (`metric`), moved through their state machine (`rule`) and persisted (`store`); firing and
//! newly resolved alerts are routed and grouped (`route`), silenced or inhibited, and each due
//! group queues one notification in the persisted outbox, which `notify::deliver` sends.

pub mod metric;
pub mod notify;
pub mod route;
pub mod rule;
pub mod store;
pub mod template;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tda_schema::alerting::{AlertingConfig, ReceiverKind};
use tda_schema::sections::{AlertKind, AlertRule, Condition};

use crate::profiles::Entry;
use crate::store::{Storage, StoreError};
use notify::{DeliveryCounters, GroupNotice};
use route::Labels;
use rule::{Phase, Timing};
use store::{AlertStore, GroupState, Outgoing, Sent, StoredAlert};
use tda_schema::answers::{AlertRow, AlertsAnswer, NotificationCounts};

/// The alerting state shared by the evaluation loop, the delivery loop and the API.
pub struct Alerting {
    /// `analytics/alerts/`.
    pub store: Arc<AlertStore>,
    /// Delivery counters.
    pub counters: Arc<DeliveryCounters>,
    /// Evaluation passes done since start.
    pub passes: std::sync::atomic::AtomicU64,
}

impl Alerting {
    /// Opens the alerting database in `dir`.
    pub fn open(dir: &std::path::Path) -> Result<Alerting, StoreError> {
        Ok(Alerting {
            store: Arc::new(AlertStore::open(dir)?),
            counters: Arc::default(),
            passes: Default::default(),
        })
    }
}

/// An alert's labels: the rule's, `alertname` and `profile`.
fn labels_of(entry: &Entry, rule: &AlertRule) -> Labels {
    let mut l = rule.labels.clone();
    l.insert("alertname".into(), rule.name.clone());
    l.insert("profile".into(), entry.id.clone());
    l
}

/// The rule's annotations with `{{ value }}`, `{{ threshold }}`, `{{ metric }}`, `{{ rule }}`,
/// `{{ profile }}` and `{{ labels.NAME }}` filled in; a `summary` when the rule gives none.
fn annotations_of(rule: &AlertRule, a: &StoredAlert) -> Labels {
    let mut values = BTreeMap::from([
        (
            "value".to_string(),
            a.state.value.map_or("no data".into(), template::number),
        ),
        (
            "threshold".to_string(),
            rule.threshold.map_or(String::new(), template::number),
        ),
        ("metric".to_string(), rule.metric.clone()),
        ("rule".to_string(), rule.name.clone()),
        ("profile".to_string(), a.profile.clone()),
    ]);
    for (k, v) in &a.labels {
        values.insert(format!("labels.{k}"), v.clone());
    }
    let mut out: Labels = rule
        .annotations
        .iter()
        .map(|(k, t)| (k.clone(), template::render(t, &values, template::plain)))
        .collect();
    out.entry("summary".into())
        .or_insert_with(|| summary(rule, a.state.value));
    out
}

/// The default summary: the rule's name, what it measured now, and when it fires and resolves.
fn summary(rule: &AlertRule, value: Option<f64>) -> String {
    let n = readable;
    let (side, back) = match rule.condition {
        Condition::Above => ("above", "below"),
        Condition::Below => ("below", "above"),
    };
    let threshold = rule.threshold.unwrap_or(match rule.kind {
        AlertKind::Anomaly => 0.5,
        _ => 0.0,
    });
    let recovery = match rule.kind {
        AlertKind::Anomaly => Some(rule.recovery.unwrap_or(threshold * 0.6)),
        _ => rule.recovery,
    };
    let limits = match recovery {
        Some(r) if r != threshold => {
            format!("fires {side} {}, resolves {back} {}", n(threshold), n(r))
        }
        _ => format!("fires {side} {}", n(threshold)),
    };
    let (name, metric) = (&rule.name, &rule.metric);
    let Some(v) = value else {
        return match rule.kind {
            AlertKind::Forecast => format!("{name}: {metric} has too little history to forecast"),
            _ => format!("{name}: {metric} has no data ({limits})"),
        };
    };
    match rule.kind {
        AlertKind::Threshold => format!("{name}: {metric} is {} ({limits})", n(v)),
        AlertKind::RateOfChange => {
            format!("{name}: {metric} changes by {} a minute ({limits})", n(v))
        }
        AlertKind::Absence => format!(
            "{name}: {metric} has {} data points in the last {} (fires when none)",
            n(v),
            rule.window
        ),
        AlertKind::Forecast => {
            let horizon = rule.horizon.map_or("1 day".to_string(), spaced);
            let reach = if side == "above" { "peak" } else { "low" };
            format!(
                "{name}: {metric} is forecast to {reach} at {} within {horizon} ({limits})",
                n(v)
            )
        }
        AlertKind::Anomaly => format!("{name}: {metric} anomaly score {} ({limits})", n(v)),
    }
}

/// A value to read in a sentence: whole above 100, else three decimals at most.
fn readable(v: f64) -> String {
    match v.abs() {
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 1.0 => template::number((v * 100.0).round() / 100.0),
        _ => template::number((v * 1000.0).round() / 1000.0),
    }
}

/// A duration as words where its unit is one ("7days" -> "7 days"; "3m" stays).
fn spaced(d: tda_schema::duration::HumanDuration) -> String {
    let text = d.to_string();
    match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) if text.len() - i > 1 && !text.contains(' ') => {
            format!("{} {}", &text[..i], &text[i..])
        }
        _ => text,
    }
}

/// Evaluates every rule of every profile once; writes the alerts that changed.
pub fn evaluate(
    store: &AlertStore,
    data: &dyn Storage,
    profiles: &[Entry],
    now: i64,
) -> Result<(), StoreError> {
    let mut stored: HashMap<(String, String), StoredAlert> = store
        .alerts()?
        .into_iter()
        .map(|a| ((a.profile.clone(), a.rule.clone()), a))
        .collect();
    let mut changed = Vec::new();
    for entry in profiles {
        for rule in &entry.profile.alerts {
            let key = (entry.id.clone(), rule.name.clone());
            let before = stored.remove(&key);
            let after = evaluate_rule(data, entry, rule, before.clone(), now);
            if before.as_ref() != Some(&after) {
                changed.push(after);
            }
        }
    }
    store.put_alerts(&changed)?;
    // Rules no longer in any profile: a firing alert resolves (and is notified), then goes.
    for (_, mut a) in stored {
        match a.state.phase {
            Phase::Firing => {
                a.state.phase = Phase::Resolved;
                a.state.resolved_at = Some(now);
                a.resolution_notified = false;
                a.error = Some("rule removed".into());
                tracing::info!(profile = %a.profile, rule = %a.rule, "alert resolved: its rule was removed");
                store.put_alert(&a)?;
            }
            Phase::Resolved if !a.resolution_notified => {}
            _ => store.remove_alert(&a.profile, &a.rule)?,
        }
    }
    Ok(())
}

/// One rule's evaluation: its alert after this step.
fn evaluate_rule(
    data: &dyn Storage,
    entry: &Entry,
    rule: &AlertRule,
    before: Option<StoredAlert>,
    now: i64,
) -> StoredAlert {
    let definition = notify::short_hash(&format!(
        "{}\n{}",
        entry.id,
        serde_json::to_string(rule).unwrap_or_default()
    ));
    let mut a = before.unwrap_or_default();
    if a.definition != definition {
        // A new or edited rule starts over (a firing alert of the old definition resolves).
        let was_firing = a.state.phase == Phase::Firing;
        a.state = rule::AlertState {
            phase: if was_firing {
                Phase::Resolved
            } else {
                Phase::Inactive
            },
            resolved_at: was_firing.then_some(now),
            ..Default::default()
        };
        a.resolution_notified = !was_firing;
        a.definition = definition;
    }
    a.profile = entry.id.clone();
    a.rule = rule.name.clone();
    a.labels = labels_of(entry, rule);
    let observed = metric::parse_selector(&rule.metric)
        .map_err(|e| format!("metric: {e}"))
        .and_then(|sel| metric::observe(data, rule, &sel, now).map_err(|e| e.to_string()));
    let obs = match observed {
        Ok(o) => {
            a.error = None;
            o
        }
        Err(e) => {
            if a.error.as_ref() != Some(&e) {
                tracing::error!(profile = %entry.id, rule = %rule.name, error = %e, "alert rule cannot be evaluated");
            }
            a.error = Some(e);
            return a;
        }
    };
    let changed = a.state.step(obs.level, obs.value, Timing::of(rule), now);
    // Rendered at every evaluation, as Prometheus does, so the summary tells the current value.
    a.annotations = annotations_of(rule, &a);
    if changed {
        if a.state.phase == Phase::Resolved {
            a.resolution_notified = false;
        }
        let value = obs.value.unwrap_or(f64::NAN);
        match a.state.phase {
            Phase::Firing => {
                tracing::warn!(profile = %entry.id, rule = %rule.name, value, "alert firing")
            }
            phase => {
                tracing::info!(profile = %entry.id, rule = %rule.name, ?phase, value, "alert state changed")
            }
        }
    }
    a
}

/// The labels of the firing alerts (the sources inhibition looks at).
fn firing_labels(alerts: &[StoredAlert]) -> Vec<&Labels> {
    alerts
        .iter()
        .filter(|a| a.state.phase == Phase::Firing)
        .map(|a| &a.labels)
        .collect()
}

/// A group being assembled: its route, labels and alerts.
struct Assembly<'a> {
    settings: tda_schema::alerting::RouteSettings,
    labels: Labels,
    members: Vec<&'a StoredAlert>,
}

/// Groups the firing and newly resolved alerts; queues a notification for each due group.
pub fn notify_groups(store: &AlertStore, cfg: &AlertingConfig, now: i64) -> Result<(), StoreError> {
    let alerts = store.alerts()?;
    let silences = store.silences()?;
    let firing = firing_labels(&alerts);
    let mut groups: BTreeMap<String, Assembly> = BTreeMap::new();
    let mut unrouted = Vec::new();
    for a in &alerts {
        let pending_resolution = a.state.phase == Phase::Resolved && !a.resolution_notified;
        if a.state.phase != Phase::Firing && !pending_resolution {
            continue;
        }
        let muted = route::silenced_by(&silences, &a.labels, now).is_some()
            || route::inhibited(cfg, &a.labels, &firing);
        match route::route(cfg, &a.labels).filter(|_| !muted) {
            Some(settings) => {
                let (key, labels) = route::group_of(&settings, &a.labels);
                groups
                    .entry(key)
                    .or_insert_with(|| Assembly {
                        settings,
                        labels,
                        members: Vec::new(),
                    })
                    .members
                    .push(a);
            }
            None if pending_resolution => unrouted.push(a),
            None => {}
        }
    }
    let mut states = store.groups()?;
    for (key, group) in &groups {
        let state = states.remove(key);
        notify_group(store, cfg, key, group, state, now)?;
    }
    // Groups left without alerts, and resolutions nobody is to be told of.
    for key in states.into_keys() {
        store.record(&Sent {
            group: (key, None),
            ..Default::default()
        })?;
    }
    for a in unrouted {
        let mut a = a.clone();
        a.resolution_notified = true;
        store.record(&Sent {
            group: (String::new(), None),
            resolved: vec![a],
            outgoing: None,
        })?;
    }
    Ok(())
}

fn notify_group(
    store: &AlertStore,
    cfg: &AlertingConfig,
    key: &str,
    group: &Assembly,
    state: Option<GroupState>,
    now: i64,
) -> Result<(), StoreError> {
    let Some(receiver) = cfg.receiver(&group.settings.receiver) else {
        return Ok(());
    };
    let is_new = state.is_none();
    let mut g = state.unwrap_or(GroupState {
        first_seen: now,
        ..Default::default()
    });
    let mut members = group.members.clone();
    members.sort_by_key(|a| (a.state.phase != Phase::Firing, a.rule.clone()));
    let any_firing = members.iter().any(|a| a.state.phase == Phase::Firing);
    let resolved: Vec<StoredAlert> = members
        .iter()
        .filter(|a| a.state.phase == Phase::Resolved)
        .map(|a| StoredAlert {
            resolution_notified: true,
            ..(*a).clone()
        })
        .collect();
    if !receiver.send_resolved {
        members.retain(|a| a.state.phase == Phase::Firing);
    }
    let notice = GroupNotice {
        receiver: &receiver.name,
        key,
        labels: &group.labels,
        members,
        external_url: &cfg.external_url,
    };
    let hash = notice.content_hash();
    let forget_or_keep = |g: GroupState| (key.to_string(), any_firing.then_some(g));
    if notice.members.is_empty() {
        return store.record(&Sent {
            group: forget_or_keep(g),
            resolved,
            outgoing: None,
        });
    }
    if !notify::due(&g, &hash, any_firing, &group.settings, now) {
        if is_new {
            store.record(&Sent {
                group: (key.to_string(), Some(g)),
                ..Default::default()
            })?;
        }
        return Ok(());
    }
    let repeat_ms = group.settings.repeat_interval.0.as_millis() as i64;
    let (url, body) = match receiver.kind {
        ReceiverKind::Alertmanager => (
            format!("{}/api/v2/alerts", receiver.url.trim_end_matches('/')),
            notice
                .alertmanager_body(now, repeat_ms + 300_000)
                .to_string(),
        ),
        ReceiverKind::Webhook => (
            receiver.url.clone(),
            match &receiver.body_template_file {
                Some(file) => match std::fs::read_to_string(file) {
                    Ok(t) => notice.templated(&t),
                    Err(e) => {
                        tracing::error!(receiver = %receiver.name, file = %file.display(), error = %e, "body template unreadable; notification held");
                        return Ok(());
                    }
                },
                None => notice.payload_v4(receiver.max_alerts).to_string(),
            },
        ),
    };
    g.sequence += 1;
    g.last_sent = Some(now);
    g.last_hash = hash;
    let dedup_key = format!("{}-{}", notify::short_hash(key), g.sequence);
    let mut headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("x-tda-dedup-key".to_string(), dedup_key.clone()),
    ];
    if let Some(file) = &receiver.hmac_secret_file {
        match tda_schema::config::read_secret(file) {
            Ok(secret) => {
                headers.push(("x-tda-signature".into(), notify::signature(&secret, &body)))
            }
            Err(e) => {
                tracing::error!(receiver = %receiver.name, error = %e, "HMAC secret unreadable; notification held");
                return Ok(());
            }
        }
    }
    tracing::info!(receiver = %receiver.name, group = %key, status = notice.status(), alerts = notice.members.len(), %dedup_key, "notification queued");
    let outgoing = Outgoing {
        receiver: receiver.name.clone(),
        url,
        body,
        headers,
        timeout_ms: receiver.timeout.0.as_millis() as u64,
        dedup_key,
        attempts: 0,
        next_attempt: now,
        created_at: now,
    };
    store.record(&Sent {
        group: forget_or_keep(g),
        resolved,
        outgoing: Some(outgoing),
    })
}

/// `GET /api/v1/alerts`: every rule's alert with its state, silenced or inhibited.
pub fn list(
    alerting: &Alerting,
    cfg: &AlertingConfig,
    now: i64,
) -> Result<AlertsAnswer, StoreError> {
    let store = &alerting.store;
    let alerts = store.alerts()?;
    let silences = store.silences()?;
    let firing = firing_labels(&alerts);
    let rows = alerts
        .iter()
        .map(|a| AlertRow {
            profile: a.profile.clone(),
            rule: a.rule.clone(),
            state: a.state.phase,
            value: a.state.value,
            active_since: a.state.active_since,
            fired_at: a.state.fired_at,
            resolved_at: a.state.resolved_at,
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            fingerprint: notify::fingerprint(&a.labels),
            silenced_by: route::silenced_by(&silences, &a.labels, now).map(str::to_string),
            inhibited: route::inhibited(cfg, &a.labels, &firing),
            error: a.error.clone(),
        })
        .collect();
    let c = &alerting.counters;
    let get = |x: &std::sync::atomic::AtomicU64| x.load(std::sync::atomic::Ordering::Relaxed);
    Ok(AlertsAnswer {
        alerts: rows,
        outbox: store.outbox()?.len(),
        passes: get(&alerting.passes),
        notifications: NotificationCounts {
            sent: get(&c.sent),
            retried: get(&c.retried),
            dropped: get(&c.dropped),
        },
    })
}

#[cfg(test)]
mod evaluation_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(toml_text: &str) -> AlertRule {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn default_summaries_tell_the_value_and_when_the_rule_fires_and_resolves() {
        let anomaly = rule("name = \"Unusual traffic\"\nkind = \"anomaly\"\nmetric = \"requests\"\nthreshold = 0.5\n");
        assert_eq!(
            summary(&anomaly, Some(0.49371)),
            "Unusual traffic: requests anomaly score 0.494 (fires above 0.5, resolves below 0.3)"
        );
        let forecast = rule("name = \"Capacity in a week\"\nkind = \"forecast\"\nmetric = \"requests\"\nthreshold = 100000\nhorizon = \"7d\"\n");
        assert_eq!(
            summary(&forecast, Some(257.0)),
            "Capacity in a week: requests is forecast to peak at 257 within 7 days (fires above 100000)"
        );
        assert_eq!(
            summary(&forecast, Some(285.0772)),
            "Capacity in a week: requests is forecast to peak at 285 within 7 days (fires above 100000)"
        );
        assert_eq!(
            summary(&forecast, None),
            "Capacity in a week: requests has too little history to forecast"
        );
        let absence = rule("name = \"Agent silent\"\nkind = \"absence\"\nmetric = \"host.cpu_percent\"\nwindow = \"3m\"\n");
        assert_eq!(
            summary(&absence, Some(7.0)),
            "Agent silent: host.cpu_percent has 7 data points in the last 3m (fires when none)"
        );
        let threshold = rule("name = \"High error rate\"\nkind = \"threshold\"\nmetric = \"error_rate\"\ncondition = \"above\"\nthreshold = 0.05\nrecovery = 0.03\n");
        assert_eq!(
            summary(&threshold, Some(0.062)),
            "High error rate: error_rate is 0.062 (fires above 0.05, resolves below 0.03)"
        );
    }

    #[test]
    fn the_summary_follows_the_value_at_every_evaluation() {
        let r = rule("name = \"High error rate\"\nkind = \"threshold\"\nmetric = \"error_rate\"\nthreshold = 0.05\n");
        let mut a = StoredAlert::default();
        let t = Timing::of(&r);
        a.state.step(Some(rule::Level::Breach), Some(0.2), t, 1_000);
        assert!(annotations_of(&r, &a)["summary"].contains("is 0.2 "));
        a.state.step(Some(rule::Level::Clear), Some(0.01), t, 2_000);
        assert!(annotations_of(&r, &a)["summary"].contains("is 0.01 "));
    }
}
