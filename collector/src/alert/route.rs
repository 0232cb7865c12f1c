//! Which receiver and group an alert goes to (the routing tree), and whether it is muted: by an
//! active silence, or by an inhibition rule while a matching source alert fires.

use std::collections::BTreeMap;

use tda_schema::alerting::{parse_matchers, AlertingConfig, Matcher, Route, RouteSettings};

use super::store::Silence;

/// Labels of an alert.
pub type Labels = BTreeMap<String, String>;

fn all_match(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers
        .iter()
        .all(|m| m.matches(labels.get(&m.name).map(String::as_str)))
}

/// The settings of the deepest route that takes the alert (children first, in order).
pub fn route(cfg: &AlertingConfig, labels: &Labels) -> Option<RouteSettings> {
    let root = cfg.route.as_ref()?;
    Some(walk(root, RouteSettings::root(root), labels))
}

fn walk(r: &Route, settings: RouteSettings, labels: &Labels) -> RouteSettings {
    for child in &r.routes {
        let matchers = parse_matchers(&child.matchers, "").unwrap_or_default();
        if all_match(&matchers, labels) {
            let s = settings.child(child);
            return walk(child, s, labels);
        }
    }
    settings
}

/// A group's key (`{}:{alertname="x",profile="y"}`, as Alertmanager writes it) and labels.
pub fn group_of(settings: &RouteSettings, labels: &Labels) -> (String, Labels) {
    let group: Labels = settings
        .group_by
        .iter()
        .filter_map(|k| labels.get(k).map(|v| (k.clone(), v.clone())))
        .collect();
    let inner: Vec<String> = group.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    (
        format!("{}/{{}}:{{{}}}", settings.receiver, inner.join(",")),
        group,
    )
}

/// Whether an active silence at `now` matches the labels; the first one's id.
pub fn silenced_by<'a>(silences: &'a [Silence], labels: &Labels, now: i64) -> Option<&'a str> {
    silences
        .iter()
        .filter(|s| s.starts_at <= now && now < s.ends_at)
        .find(|s| {
            let matchers = parse_matchers(&s.matchers, "").unwrap_or_default();
            !matchers.is_empty() && all_match(&matchers, labels)
        })
        .map(|s| s.id.as_str())
}

/// Whether an inhibition rule mutes `target` given the firing alerts' labels.
pub fn inhibited(cfg: &AlertingConfig, target: &Labels, firing: &[&Labels]) -> bool {
    cfg.inhibit.iter().any(|rule| {
        let source = parse_matchers(&rule.source_matchers, "").unwrap_or_default();
        let targets = parse_matchers(&rule.target_matchers, "").unwrap_or_default();
        all_match(&targets, target)
            && firing.iter().any(|s| {
                *s != target
                    && all_match(&source, s)
                    && rule.equal.iter().all(|k| s.get(k) == target.get(k))
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn config() -> AlertingConfig {
        toml::from_str(
            r#"
[[receiver]]
name = "ops"
url = "http://x"
[[receiver]]
name = "pager"
url = "http://y"
[route]
receiver = "ops"
group_by = ["alertname"]
[[route.routes]]
matchers = ["severity=critical"]
receiver = "pager"
group_by = ["profile"]
[[inhibit]]
source_matchers = ["severity=critical"]
target_matchers = ["severity=warning"]
equal = ["profile"]
"#,
        )
        .unwrap()
    }

    #[test]
    fn routes_group_and_inhibit() {
        let cfg = config();
        let crit = labels(&[
            ("alertname", "Down"),
            ("severity", "critical"),
            ("profile", "web"),
        ]);
        let warn = labels(&[
            ("alertname", "Slow"),
            ("severity", "warning"),
            ("profile", "web"),
        ]);
        let other = labels(&[
            ("alertname", "Slow"),
            ("severity", "warning"),
            ("profile", "api"),
        ]);
        let r = route(&cfg, &crit).unwrap();
        assert_eq!(r.receiver, "pager");
        assert_eq!(group_of(&r, &crit).0, "pager/{}:{profile=\"web\"}");
        let r = route(&cfg, &warn).unwrap();
        assert_eq!(
            (r.receiver.as_str(), group_of(&r, &warn).0.as_str()),
            ("ops", "ops/{}:{alertname=\"Slow\"}")
        );
        assert!(inhibited(&cfg, &warn, &[&crit]));
        assert!(!inhibited(&cfg, &other, &[&crit]), "different profile");
        assert!(!inhibited(&cfg, &crit, &[&crit]));
    }

    #[test]
    fn silences_apply_between_their_times() {
        let s = Silence {
            id: "1".into(),
            matchers: vec!["alertname=Slow".into()],
            starts_at: 100,
            ends_at: 200,
            comment: String::new(),
            created_by: String::new(),
        };
        let l = labels(&[("alertname", "Slow")]);
        assert_eq!(silenced_by(std::slice::from_ref(&s), &l, 150), Some("1"));
        assert_eq!(silenced_by(std::slice::from_ref(&s), &l, 200), None);
        assert_eq!(
            silenced_by(&[s], &labels(&[("alertname", "Down")]), 150),
            None
        );
    }
}
