//! `collector.toml`'s `[alerting]` section: how often rules are evaluated, the receivers
//! notifications go to, the routing tree that groups alerts and picks a receiver, and inhibition.
//! Matchers (`name=value`, `name!=value`, `name=~regex`, `name!~regex`) are parsed here too.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::HumanDuration;

fn default_evaluation_interval() -> HumanDuration {
    HumanDuration::secs(15)
}
fn default_external_url() -> String {
    "http://127.0.0.1:7300".into()
}
fn default_group_by() -> Vec<String> {
    vec!["alertname".into(), "profile".into()]
}
fn default_group_wait() -> HumanDuration {
    HumanDuration::secs(30)
}
fn default_group_interval() -> HumanDuration {
    HumanDuration::secs(300)
}
fn default_repeat_interval() -> HumanDuration {
    HumanDuration::secs(4 * 3600)
}
fn default_true() -> bool {
    true
}
fn default_timeout() -> HumanDuration {
    HumanDuration::secs(10)
}
fn default_max_alerts() -> usize {
    0
}

/// `[alerting]`: rule evaluation and notification.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertingConfig {
    /// How often every alert rule is evaluated.
    #[serde(default = "default_evaluation_interval")]
    pub evaluation_interval: HumanDuration,
    /// Base URL of this collector as receivers should link to it (`externalURL`,
    /// `generatorURL`, report links).
    #[serde(default = "default_external_url")]
    pub external_url: String,
    /// Where notifications go (`[[alerting.receiver]]`).
    #[serde(default, rename = "receiver")]
    pub receivers: Vec<Receiver>,
    /// The routing tree's root: every alert enters here.
    #[serde(default)]
    pub route: Option<Route>,
    /// Rules that mute some alerts while others fire (`[[alerting.inhibit]]`).
    #[serde(default, rename = "inhibit")]
    pub inhibit: Vec<Inhibit>,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            evaluation_interval: default_evaluation_interval(),
            external_url: default_external_url(),
            receivers: Vec::new(),
            route: None,
            inhibit: Vec::new(),
        }
    }
}

/// What a receiver speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReceiverKind {
    /// POSTs the Alertmanager webhook payload (version 4), or `body_template`, to `url`.
    #[default]
    Webhook,
    /// POSTs alerts to an Alertmanager's `/api/v2/alerts` at `url`, as Prometheus does.
    Alertmanager,
}

/// A receiver (`[[alerting.receiver]]`).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Receiver {
    /// Name routes refer to.
    pub name: String,
    /// webhook | alertmanager.
    #[serde(default)]
    pub kind: ReceiverKind,
    /// The webhook URL, or the Alertmanager base URL (`http://host:9093`).
    pub url: String,
    /// Also notify when a group's alerts resolve.
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    /// Longest wait for the receiver's answer; a timeout is retried.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Most alerts in one notification (0: all); the rest are counted in `truncatedAlerts`.
    #[serde(default = "default_max_alerts")]
    pub max_alerts: usize,
    /// File holding a secret: each request then carries `X-TDA-Signature: sha256=<hex HMAC of
    /// the body>`. Relative to this file.
    #[serde(default)]
    pub hmac_secret_file: Option<PathBuf>,
    /// File with a body template used instead of the webhook payload (for Slack-style
    /// receivers); `{{ status }}`, `{{ receiver }}`, `{{ alerts }}` (one line per alert) and
    /// the group's `{{ labels.NAME }}` / `{{ annotations.NAME }}` are filled in, JSON-escaped.
    #[serde(default)]
    pub body_template_file: Option<PathBuf>,
}

/// A node of the routing tree (`[alerting.route]`, `[[alerting.route.routes]]`). Unset timing
/// and grouping settings are inherited from the parent.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Receiver of the alerts this route takes (inherited when absent; required at the root).
    #[serde(default)]
    pub receiver: Option<String>,
    /// Which alerts this route takes, all must hold (a child route only).
    #[serde(default)]
    pub matchers: Vec<String>,
    /// Labels whose values make one group; default `["alertname", "profile"]`.
    #[serde(default)]
    pub group_by: Option<Vec<String>>,
    /// Wait before the first notification of a new group (more alerts may join).
    #[serde(default)]
    pub group_wait: Option<HumanDuration>,
    /// Wait before notifying about changes to a group already notified.
    #[serde(default)]
    pub group_interval: Option<HumanDuration>,
    /// Wait before sending an unchanged notification again.
    #[serde(default)]
    pub repeat_interval: Option<HumanDuration>,
    /// Child routes; the first whose matchers hold takes the alert, else this route does.
    #[serde(default)]
    pub routes: Vec<Route>,
}

/// A route with every setting resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteSettings {
    /// Receiver name.
    pub receiver: String,
    /// Grouping labels.
    pub group_by: Vec<String>,
    /// See [`Route::group_wait`].
    pub group_wait: HumanDuration,
    /// See [`Route::group_interval`].
    pub group_interval: HumanDuration,
    /// See [`Route::repeat_interval`].
    pub repeat_interval: HumanDuration,
}

impl RouteSettings {
    /// The root's settings with the defaults filled in.
    pub fn root(r: &Route) -> RouteSettings {
        RouteSettings {
            receiver: r.receiver.clone().unwrap_or_default(),
            group_by: r.group_by.clone().unwrap_or_else(default_group_by),
            group_wait: r.group_wait.unwrap_or_else(default_group_wait),
            group_interval: r.group_interval.unwrap_or_else(default_group_interval),
            repeat_interval: r.repeat_interval.unwrap_or_else(default_repeat_interval),
        }
    }

    /// A child's settings: its own where set, else these.
    pub fn child(&self, r: &Route) -> RouteSettings {
        RouteSettings {
            receiver: r.receiver.clone().unwrap_or_else(|| self.receiver.clone()),
            group_by: r.group_by.clone().unwrap_or_else(|| self.group_by.clone()),
            group_wait: r.group_wait.unwrap_or(self.group_wait),
            group_interval: r.group_interval.unwrap_or(self.group_interval),
            repeat_interval: r.repeat_interval.unwrap_or(self.repeat_interval),
        }
    }
}

/// An inhibition rule (`[[alerting.inhibit]]`): while an alert matching `source_matchers` fires,
/// alerts matching `target_matchers` with the same values of the `equal` labels are muted.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Inhibit {
    /// Matchers of the muting alert.
    pub source_matchers: Vec<String>,
    /// Matchers of the muted alerts.
    pub target_matchers: Vec<String>,
    /// Labels both must share.
    #[serde(default)]
    pub equal: Vec<String>,
}

/// How a matcher compares a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (the whole value matches the pattern)
    Regex,
    /// `!~`
    NotRegex,
}

/// A label matcher: `name=value`, `name!=value`, `name=~pattern`, `name!~pattern` (the
/// pattern's `*` matches any run of characters). A missing label has the value `""`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Comparison.
    pub op: MatchOp,
    /// Value or pattern.
    pub value: String,
}

impl Matcher {
    /// Parses one matcher; the value may be quoted.
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let ops = [
            ("!=", MatchOp::NotEqual),
            ("=~", MatchOp::Regex),
            ("!~", MatchOp::NotRegex),
            ("=", MatchOp::Equal),
        ];
        let (at, op, len) = ops
            .iter()
            .filter_map(|(s, op)| text.find(s).map(|i| (i, *op, s.len())))
            .min_by_key(|(i, _, len)| (*i, std::cmp::Reverse(*len)))
            .ok_or_else(|| {
                format!(
                    "`{text}`: expected NAME=VALUE, NAME!=VALUE, NAME=~PATTERN or NAME!~PATTERN"
                )
            })?;
        let name = text[..at].trim();
        let value = text[at + len..].trim().trim_matches('"');
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`{text}`: `{name}` is not a label name"));
        }
        Ok(Matcher {
            name: name.into(),
            op,
            value: value.into(),
        })
    }

    /// Whether the label value (`""` when missing) satisfies the matcher.
    pub fn matches(&self, value: Option<&str>) -> bool {
        let v = value.unwrap_or("");
        match self.op {
            MatchOp::Equal => v == self.value,
            MatchOp::NotEqual => v != self.value,
            MatchOp::Regex => crate::profile::glob_match(&self.value, v),
            MatchOp::NotRegex => !crate::profile::glob_match(&self.value, v),
        }
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match self.op {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        };
        write!(f, "{}{op}{}", self.name, self.value)
    }
}

/// Parses a list of matchers, naming the field of the first bad one.
pub fn parse_matchers(list: &[String], field: &str) -> Result<Vec<Matcher>, String> {
    list.iter()
        .map(|m| Matcher::parse(m).map_err(|e| format!("{field}: {e}")))
        .collect()
}

impl AlertingConfig {
    /// Checks names, references and matchers; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.evaluation_interval.0.as_millis() < 100 {
            return Err("alerting.evaluation_interval: at least 100ms".into());
        }
        if !self.external_url.starts_with("http://") && !self.external_url.starts_with("https://") {
            return Err(format!(
                "alerting.external_url: `{}` is not an http(s) URL",
                self.external_url
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, r) in self.receivers.iter().enumerate() {
            if r.name.trim().is_empty() || !names.insert(r.name.as_str()) {
                return Err(format!(
                    "alerting.receiver[{i}].name: `{}` is empty or used twice",
                    r.name
                ));
            }
            if !r.url.starts_with("http://") && !r.url.starts_with("https://") {
                return Err(format!(
                    "alerting.receiver[{i}].url: `{}` is not an http(s) URL",
                    r.url
                ));
            }
            if r.timeout.is_zero() {
                return Err(format!("alerting.receiver[{i}].timeout: must be > 0"));
            }
        }
        match &self.route {
            Some(root) if root.receiver.is_none() => {
                return Err("alerting.route.receiver: required at the root".into())
            }
            Some(root) => self.validate_route(root, "alerting.route", &names)?,
            None if !self.receivers.is_empty() => {
                return Err("alerting.route: required when receivers are configured".into())
            }
            None => {}
        }
        for (i, rule) in self.inhibit.iter().enumerate() {
            let at = format!("alerting.inhibit[{i}]");
            parse_matchers(&rule.source_matchers, &format!("{at}.source_matchers"))?;
            parse_matchers(&rule.target_matchers, &format!("{at}.target_matchers"))?;
        }
        Ok(())
    }

    fn validate_route(
        &self,
        r: &Route,
        at: &str,
        receivers: &std::collections::HashSet<&str>,
    ) -> Result<(), String> {
        if let Some(name) = &r.receiver {
            if !receivers.contains(name.as_str()) {
                return Err(format!("{at}.receiver: no receiver `{name}`"));
            }
        }
        parse_matchers(&r.matchers, &format!("{at}.matchers"))?;
        for (field, d) in [
            ("group_interval", r.group_interval),
            ("repeat_interval", r.repeat_interval),
        ] {
            if d.is_some_and(|d| d.is_zero()) {
                return Err(format!("{at}.{field}: must be > 0"));
            }
        }
        for (i, child) in r.routes.iter().enumerate() {
            self.validate_route(child, &format!("{at}.routes[{i}]"), receivers)?;
        }
        Ok(())
    }

    /// The receiver named `name`.
    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|r| r.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_parse_and_match() {
        let m = Matcher::parse("severity = \"critical\"").unwrap();
        assert_eq!(
            (m.name.as_str(), m.op, m.value.as_str()),
            ("severity", MatchOp::Equal, "critical")
        );
        assert!(m.matches(Some("critical")) && !m.matches(None));
        let m = Matcher::parse("alertname=~High*").unwrap();
        assert!(m.matches(Some("HighErrorRate")) && !m.matches(Some("LowTraffic")));
        let m = Matcher::parse("env!=prod").unwrap();
        assert!(m.matches(None) && !m.matches(Some("prod")));
        let m = Matcher::parse("env!~pr*").unwrap();
        assert!(m.matches(Some("staging")) && !m.matches(Some("prod")));
        assert!(Matcher::parse("just text").is_err());
        assert!(Matcher::parse("bad name=x").is_err());
        assert_eq!(Matcher::parse("a=~b*").unwrap().to_string(), "a=~b*");
    }

    #[test]
    fn validation_names_the_field() {
        let cfg: AlertingConfig = toml::from_str(
            "[[receiver]]\nname = \"ops\"\nurl = \"http://x\"\n[route]\nreceiver = \"ops\"\n[[route.routes]]\nreceiver = \"pager\"\n",
        )
        .unwrap();
        assert_eq!(
            cfg.validate().unwrap_err(),
            "alerting.route.routes[0].receiver: no receiver `pager`"
        );
        let cfg: AlertingConfig =
            toml::from_str("[[receiver]]\nname = \"ops\"\nurl = \"ftp://x\"\n").unwrap();
        assert!(cfg
            .validate()
            .unwrap_err()
            .starts_with("alerting.receiver[0].url"));
        let ok: AlertingConfig = toml::from_str(
            "[[receiver]]\nname = \"ops\"\nurl = \"http://x\"\n[route]\nreceiver = \"ops\"\ngroup_wait = \"1s\"\n[[route.routes]]\nmatchers = [\"severity=critical\"]\nrepeat_interval = \"1m\"\n",
        )
        .unwrap();
        ok.validate().unwrap();
        let root = RouteSettings::root(ok.route.as_ref().unwrap());
        let child = root.child(&ok.route.as_ref().unwrap().routes[0]);
        assert_eq!(child.receiver, "ops");
        assert_eq!(child.group_wait, HumanDuration::secs(1));
        assert_eq!(child.repeat_interval, HumanDuration::secs(60));
        assert_eq!(child.group_by, vec!["alertname", "profile"]);
    }
}
