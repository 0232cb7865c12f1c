//! The profile sections that later parts of the collector act on: alert rules (`[[alert]]`),
//! model settings (`[models]`), report schedules (`[[report]]`) and dashboard views (`[[view]]`).
//! They are parsed and validated here so a profile is checked whole when it is loaded.

use std::collections::{BTreeMap, HashSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::HumanDuration;

/// A field that breaks a rule: its dotted path inside the profile, and why.
pub type Violation = (String, String);

fn violation(path: String, message: impl Into<String>) -> Violation {
    (path, message.into())
}

/// What an alert rule watches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The metric crosses `threshold`.
    Threshold,
    /// The metric changes by more than `threshold` per minute.
    RateOfChange,
    /// No data for the metric (or the agent is silent) for `for`.
    Absence,
    /// The forecast crosses `threshold` within `horizon`.
    Forecast,
    /// The anomaly score of the metric reaches `threshold` (0-1, default 0.5).
    Anomaly,
}

/// Which side of the threshold fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Fires when the value is above the threshold.
    #[default]
    Above,
    /// Fires when the value is below the threshold.
    Below,
}

/// What a rule does while its metric has no data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum NoData {
    /// Keep the current state.
    #[default]
    Keep,
    /// Treat as not firing.
    Ok,
    /// Treat as firing.
    Alerting,
}

fn default_alert_window() -> HumanDuration {
    HumanDuration::secs(300)
}

/// One alert rule (`[[alert]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// Rule name, unique within the profile.
    pub name: String,
    /// threshold | rate_of_change | absence | forecast | anomaly.
    pub kind: AlertKind,
    /// The metric watched, for example `error_rate`, `latency_p95_ms`, `host.cpu_percent`.
    pub metric: String,
    /// Which side of `threshold` fires.
    #[serde(default)]
    pub condition: Condition,
    /// The firing threshold (required for threshold, rate_of_change and forecast rules).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// The value that resolves a firing rule (hysteresis); `threshold` when absent.
    #[serde(default)]
    pub recovery: Option<f64>,
    /// How long the condition must hold before the rule fires.
    #[serde(default, rename = "for")]
    pub for_duration: HumanDuration,
    /// How long a rule keeps firing after its condition clears.
    #[serde(default)]
    pub keep_firing_for: HumanDuration,
    /// How far ahead a forecast rule looks (required for forecast rules).
    #[serde(default)]
    pub horizon: Option<HumanDuration>,
    /// The trailing window the metric's value is taken over at each evaluation (for an anomaly
    /// rule: the step of the series scored; for an absence rule: how long without data).
    #[serde(default = "default_alert_window")]
    pub window: HumanDuration,
    /// Forecast rules: fire only while the current value is also beyond this.
    #[serde(default)]
    pub guard: Option<f64>,
    /// What to do while the metric has no data.
    #[serde(default)]
    pub no_data: NoData,
    /// Labels attached to notifications.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Templated annotations (summary, description …).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl AlertRule {
    fn validate(&self, at: &str) -> Result<(), Violation> {
        let field = |f: &str| format!("{at}.{f}");
        if self.name.trim().is_empty() {
            return Err(violation(field("name"), "must not be empty"));
        }
        if self.metric.trim().is_empty() {
            return Err(violation(field("metric"), "must not be empty"));
        }
        let needs_threshold = matches!(
            self.kind,
            AlertKind::Threshold | AlertKind::RateOfChange | AlertKind::Forecast
        );
        if needs_threshold && self.threshold.is_none() {
            return Err(violation(
                field("threshold"),
                format!("required for a {:?} rule", self.kind).to_lowercase(),
            ));
        }
        if self.kind == AlertKind::Forecast && self.horizon.is_none_or(|h| h.is_zero()) {
            return Err(violation(
                field("horizon"),
                "required (> 0) for a forecast rule",
            ));
        }
        if self.window.0.as_millis() < 1_000 {
            return Err(violation(field("window"), "must be at least 1s"));
        }
        if self.guard.is_some() && self.kind != AlertKind::Forecast {
            return Err(violation(
                field("guard"),
                "only forecast rules take a guard",
            ));
        }
        if self.kind == AlertKind::Absence && self.for_duration.is_zero() {
            return Err(violation(field("for"), "an absence rule needs `for` > 0"));
        }
        if self.kind == AlertKind::Anomaly {
            if let Some(t) = self
                .threshold
                .filter(|t| !(0.0..=1.0).contains(t) || *t == 0.0)
            {
                return Err(violation(
                    field("threshold"),
                    format!("{t}: an anomaly score threshold is in (0, 1]"),
                ));
            }
        }
        self.validate_recovery(&field("recovery"))
    }

    fn validate_recovery(&self, path: &str) -> Result<(), Violation> {
        let (Some(t), Some(r)) = (self.threshold, self.recovery) else {
            return Ok(());
        };
        match self.condition {
            Condition::Above if r > t => Err(violation(
                path.into(),
                format!("{r} must be <= threshold {t} for an `above` rule"),
            )),
            Condition::Below if r < t => Err(violation(
                path.into(),
                format!("{r} must be >= threshold {t} for a `below` rule"),
            )),
            _ => Ok(()),
        }
    }
}

/// A predictive or behavioral model the collector can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Robust slope with significance.
    Trend,
    /// Seasonal forecast with prediction intervals.
    Forecast,
    /// Streaming anomaly scores.
    Anomaly,
    /// Seasonality and change points.
    Pattern,
    /// Sessions, journeys, funnels, retention, segments.
    Behavior,
}

fn default_model_every() -> HumanDuration {
    HumanDuration::secs(3_600)
}
fn default_horizon() -> HumanDuration {
    HumanDuration::secs(86_400)
}
fn default_sensitivity() -> f64 {
    0.5
}
fn default_session_timeout() -> HumanDuration {
    HumanDuration::secs(1_800)
}
fn default_session_max() -> HumanDuration {
    HumanDuration::secs(86_400)
}

fn default_lookback() -> HumanDuration {
    HumanDuration::secs(7 * 86_400)
}

/// Longest history a scheduled behavioral run covers.
const MAX_LOOKBACK_SECS: u64 = 366 * 86_400;

/// Which models run for this profile and how (`[models]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    /// Models to run; none by default.
    #[serde(default)]
    pub run: Vec<ModelKind>,
    /// How often the models run.
    #[serde(default = "default_model_every")]
    pub every: HumanDuration,
    /// Metrics the models work on (for example `requests`, `latency_p95_ms`); all usage series
    /// when empty.
    #[serde(default)]
    pub metrics: Vec<String>,
    /// How far forecasts look ahead.
    #[serde(default = "default_horizon")]
    pub horizon: HumanDuration,
    /// Anomaly sensitivity, 0 (flag little) to 1 (flag much).
    #[serde(default = "default_sensitivity")]
    pub sensitivity: f64,
    /// Inactivity that ends a session.
    #[serde(default = "default_session_timeout")]
    pub session_timeout: HumanDuration,
    /// Longest a session may last.
    #[serde(default = "default_session_max")]
    pub session_max: HumanDuration,
    /// History the scheduled behavioral analyses of a behavioral profile cover (ending at
    /// each run).
    #[serde(default = "default_lookback")]
    pub lookback: HumanDuration,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            run: Vec::new(),
            every: default_model_every(),
            metrics: Vec::new(),
            horizon: default_horizon(),
            sensitivity: default_sensitivity(),
            session_timeout: default_session_timeout(),
            session_max: default_session_max(),
            lookback: default_lookback(),
        }
    }
}

impl ModelSettings {
    /// Whether every setting is its default (the section can be left out).
    pub fn is_default(&self) -> bool {
        *self == ModelSettings::default()
    }

    fn validate(&self) -> Result<(), Violation> {
        if self.every.0.as_secs() < 60 {
            return Err(violation(
                "models.every".into(),
                format!("{} is shorter than 1m", self.every),
            ));
        }
        if self.horizon.is_zero() {
            return Err(violation("models.horizon".into(), "must be > 0"));
        }
        if !(0.0..=1.0).contains(&self.sensitivity) {
            return Err(violation(
                "models.sensitivity".into(),
                format!("{} is not in 0-1", self.sensitivity),
            ));
        }
        if self.session_timeout.is_zero() || self.session_timeout > self.session_max {
            return Err(violation(
                "models.session_timeout".into(),
                format!(
                    "{} must be > 0 and <= session_max {}",
                    self.session_timeout, self.session_max
                ),
            ));
        }
        if self.lookback.is_zero() || self.lookback.0.as_secs() > MAX_LOOKBACK_SECS {
            return Err(violation(
                "models.lookback".into(),
                format!("{} must be > 0 and at most 366d", self.lookback),
            ));
        }
        Ok(())
    }
}

/// How a funnel's steps must follow each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum FunnelMode {
    /// In order, other events allowed between.
    #[default]
    Ordered,
    /// In order, nothing between.
    Strict,
    /// In any order.
    Unordered,
}

impl std::str::FromStr for FunnelMode {
    type Err = String;

    /// Parses `ordered`, `strict` or `unordered`.
    fn from_str(text: &str) -> Result<FunnelMode, String> {
        match text {
            "ordered" => Ok(FunnelMode::Ordered),
            "strict" => Ok(FunnelMode::Strict),
            "unordered" => Ok(FunnelMode::Unordered),
            _ => Err(format!("`{text}` is not ordered, strict or unordered")),
        }
    }
}

fn default_funnel_window() -> HumanDuration {
    HumanDuration::secs(86_400)
}

/// A funnel the scheduler computes for a behavioral profile (`[[funnel]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FunnelSpec {
    /// Funnel name, unique within the profile.
    pub name: String,
    /// The features of its steps, in order (2-20).
    pub steps: Vec<String>,
    /// How long after step 1 the last step may come.
    #[serde(default = "default_funnel_window")]
    pub window: HumanDuration,
    /// ordered | strict | unordered.
    #[serde(default)]
    pub mode: FunnelMode,
    /// An event property to break the funnel down by (of the entry event).
    #[serde(default)]
    pub breakdown: Option<String>,
}

/// Checks the funnels of a profile: names unique, 2-20 non-empty steps, a window.
pub fn validate_funnels(funnels: &[FunnelSpec]) -> Result<(), Violation> {
    let mut names = HashSet::new();
    for (i, f) in funnels.iter().enumerate() {
        let at = format!("funnel[{i}]");
        if f.name.trim().is_empty() {
            return Err(violation(format!("{at}.name"), "must not be empty"));
        }
        if !names.insert(f.name.as_str()) {
            return Err(violation(
                format!("{at}.name"),
                format!("`{}` is used by another funnel", f.name),
            ));
        }
        if !(2..=20).contains(&f.steps.len()) || f.steps.iter().any(|s| s.trim().is_empty()) {
            return Err(violation(
                format!("{at}.steps"),
                "2 to 20 features, none empty",
            ));
        }
        if f.window.is_zero() {
            return Err(violation(format!("{at}.window"), "must be > 0"));
        }
    }
    Ok(())
}

/// How often a report is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportEvery {
    /// At the top of every hour.
    Hourly,
    /// Every day at `at` in `timezone`.
    Daily,
    /// Every `weekday` at `at` in `timezone`.
    Weekly,
}

/// A report output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportFormat {
    /// HTML with charts.
    Html,
    /// Machine-readable JSON.
    Json,
    /// Markdown.
    Markdown,
}

fn default_formats() -> Vec<ReportFormat> {
    vec![ReportFormat::Html]
}

fn default_utc() -> String {
    "UTC".into()
}
fn default_report_keep() -> HumanDuration {
    HumanDuration::secs(90 * 86_400)
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    /// Monday.
    #[default]
    Monday,
    /// Tuesday.
    Tuesday,
    /// Wednesday.
    Wednesday,
    /// Thursday.
    Thursday,
    /// Friday.
    Friday,
    /// Saturday.
    Saturday,
    /// Sunday.
    Sunday,
}

impl Weekday {
    /// Days after Monday (0-6).
    pub fn from_monday(self) -> i8 {
        self as i8
    }
}

/// A scheduled report (`[[report]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportSchedule {
    /// Report name, unique within the profile.
    pub name: String,
    /// hourly | daily | weekly: it covers the hour, day or week before each run.
    pub every: ReportEvery,
    /// Time of day (`HH:MM`, in `timezone`) daily and weekly reports run at.
    #[serde(default)]
    pub at: Option<String>,
    /// IANA time zone of `at` and `weekday`, for example `Europe/Paris`.
    #[serde(default = "default_utc")]
    pub timezone: String,
    /// Day weekly reports run on.
    #[serde(default)]
    pub weekday: Weekday,
    /// Formats written under `analytics/reports/`.
    #[serde(default = "default_formats")]
    pub formats: Vec<ReportFormat>,
    /// Webhook URL told when a report is ready (its summary and links).
    #[serde(default)]
    pub webhook: Option<String>,
    /// How long reports are kept before they are deleted.
    #[serde(default = "default_report_keep")]
    pub keep_for: HumanDuration,
}

impl ReportSchedule {
    /// `at` as (hour, minute); 00:00 when absent.
    pub fn time_of_day(&self) -> Result<(i8, i8), String> {
        let Some(at) = &self.at else {
            return Ok((0, 0));
        };
        let bad = || format!("`{at}` is not HH:MM");
        let (h, m) = at.split_once(':').ok_or_else(bad)?;
        let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if !(0..24).contains(&h) || !(0..60).contains(&m) {
            return Err(bad());
        }
        Ok((h, m))
    }

    /// The time zone.
    pub fn zone(&self) -> Result<jiff::tz::TimeZone, String> {
        jiff::tz::TimeZone::get(&self.timezone)
            .map_err(|_| format!("`{}` is not a time zone this machine knows", self.timezone))
    }
}

impl ReportSchedule {
    fn validate(&self, at: &str) -> Result<(), Violation> {
        if self.name.trim().is_empty() {
            return Err(violation(format!("{at}.name"), "must not be empty"));
        }
        if self.formats.is_empty() {
            return Err(violation(format!("{at}.formats"), "at least one format"));
        }
        self.time_of_day()
            .map_err(|e| violation(format!("{at}.at"), e))?;
        self.zone()
            .map_err(|e| violation(format!("{at}.timezone"), e))?;
        if self.keep_for.is_zero() {
            return Err(violation(format!("{at}.keep_for"), "must be > 0"));
        }
        if let Some(url) = self
            .webhook
            .as_deref()
            .filter(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            return Err(violation(
                format!("{at}.webhook"),
                format!("`{url}` is not an http(s) URL"),
            ));
        }
        Ok(())
    }
}

/// A chart type for a custom view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Chart {
    /// Line chart over time.
    Line,
    /// Bars over time or categories.
    Bar,
    /// Stacked area over time.
    Area,
    /// A table.
    Table,
    /// A single number.
    Number,
}

fn default_view_range() -> HumanDuration {
    HumanDuration::secs(86_400)
}

/// A custom dashboard panel (`[[view]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct View {
    /// Panel title.
    pub title: String,
    /// What the panel shows: a metric or stats field, for example `requests` or `features`.
    pub query: String,
    /// line | bar | area | table | number.
    pub chart: Chart,
    /// Time range shown.
    #[serde(default = "default_view_range")]
    pub range: HumanDuration,
}

/// Checks every section, and that rule and report names are unique.
pub fn validate_sections(
    alerts: &[AlertRule],
    models: &ModelSettings,
    reports: &[ReportSchedule],
    views: &[View],
) -> Result<(), Violation> {
    let mut names = HashSet::new();
    for (i, rule) in alerts.iter().enumerate() {
        let at = format!("alert[{i}]");
        rule.validate(&at)?;
        if !names.insert(rule.name.as_str()) {
            return Err(violation(
                format!("{at}.name"),
                format!("`{}` is used by another rule", rule.name),
            ));
        }
    }
    models.validate()?;
    let mut names = HashSet::new();
    for (i, report) in reports.iter().enumerate() {
        let at = format!("report[{i}]");
        report.validate(&at)?;
        if !names.insert(report.name.as_str()) {
            return Err(violation(
                format!("{at}.name"),
                format!("`{}` is used by another report", report.name),
            ));
        }
    }
    for (i, view) in views.iter().enumerate() {
        if view.title.trim().is_empty() || view.query.trim().is_empty() {
            return Err(violation(
                format!("view[{i}]"),
                "title and query must not be empty",
            ));
        }
    }
    Ok(())
}
