//! Analytics profiles: the TOML files that say what to collect, how often, how long to keep it and at what granularity.
//!
//! (Over 600 lines with its unit tests, kept beside the loader whose errors they check: the
//! code is about 470.)

use std::fmt;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::sections::{validate_sections, AlertRule, ModelSettings, ReportSchedule, View};

/// The four analytics families of the seed document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProfileType {
    /// Requests, active users, feature usage, usage patterns.
    Usage,
    /// Host and process resources, latency, errors, system health.
    Performance,
    /// Trends, forecasts, anomalies, patterns.
    Predictive,
    /// Sessions, journeys, funnels, retention, segments.
    Behavioral,
}

impl ProfileType {
    /// Every type, in the seed's order.
    pub const ALL: [ProfileType; 4] = [
        ProfileType::Usage,
        ProfileType::Performance,
        ProfileType::Predictive,
        ProfileType::Behavioral,
    ];

    /// The lowercase name used in TOML, URLs and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileType::Usage => "usage",
            ProfileType::Performance => "performance",
            ProfileType::Predictive => "predictive",
            ProfileType::Behavioral => "behavioral",
        }
    }

    /// Parses `usage`, `performance`, `predictive` or `behavioral`.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == text)
            .ok_or_else(|| {
                format!("unknown profile type `{text}`, expected usage, performance, predictive or behavioral")
            })
    }
}

impl fmt::Display for ProfileType {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The time bucket that rollups and interval series use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AggregationLevel {
    /// One-minute buckets.
    Minute,
    /// One-hour buckets.
    Hour,
    /// One-day buckets (UTC days).
    Day,
}

impl AggregationLevel {
    /// Bucket width in milliseconds.
    pub fn millis(self) -> i64 {
        match self {
            AggregationLevel::Minute => 60_000,
            AggregationLevel::Hour => 3_600_000,
            AggregationLevel::Day => 86_400_000,
        }
    }

    /// The lowercase name used in TOML.
    pub fn as_str(self) -> &'static str {
        match self {
            AggregationLevel::Minute => "minute",
            AggregationLevel::Hour => "hour",
            AggregationLevel::Day => "day",
        }
    }
}

/// Default `collection_interval`: one minute, the seed's example.
pub const DEFAULT_COLLECTION_INTERVAL: u64 = 60;
/// Default `retention_period`: 30 days, the seed's example.
pub const DEFAULT_RETENTION_PERIOD: u64 = 30;
/// Longest accepted `collection_interval`: one day.
pub const MAX_COLLECTION_INTERVAL: u64 = 86_400;
/// Longest accepted `retention_period`: 100 years.
pub const MAX_RETENTION_PERIOD: u64 = 36_500;
/// Longest accepted profile name, in bytes.
pub const MAX_NAME_LEN: usize = 100;

fn default_collection_interval() -> u64 {
    DEFAULT_COLLECTION_INTERVAL
}
fn default_retention_period() -> u64 {
    DEFAULT_RETENTION_PERIOD
}
fn default_aggregation_level() -> AggregationLevel {
    AggregationLevel::Minute
}

/// How a profile collects, keeps and aggregates its data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Seconds between samples (agents sample host and process at the shortest performance interval).
    #[serde(default = "default_collection_interval")]
    pub collection_interval: u64,
    /// Days data is kept.
    #[serde(default = "default_retention_period")]
    pub retention_period: u64,
    /// Bucket width of interval series and rollups: minute, hour or day.
    #[serde(default = "default_aggregation_level")]
    pub aggregation_level: AggregationLevel,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            collection_interval: DEFAULT_COLLECTION_INTERVAL,
            retention_period: DEFAULT_RETENTION_PERIOD,
            aggregation_level: AggregationLevel::Minute,
        }
    }
}

/// One analytics profile, as written in `<profiles_dir>/<file>.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Human name, unique among profiles (compared by its id).
    pub name: String,
    /// Analytics family: usage, performance, predictive or behavioral.
    #[serde(rename = "type")]
    pub kind: ProfileType,
    /// Agents the profile applies to, as agent-id patterns (`*` matches any run of characters);
    /// every agent when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
    /// Collection, retention and aggregation settings.
    #[serde(default)]
    pub settings: Settings,
    /// Alert rules (`[[alert]]`).
    #[serde(default, rename = "alert", skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<AlertRule>,
    /// Predictive and behavioral model settings (`[models]`).
    #[serde(default, skip_serializing_if = "ModelSettings::is_default")]
    pub models: ModelSettings,
    /// Report schedules (`[[report]]`).
    #[serde(default, rename = "report", skip_serializing_if = "Vec::is_empty")]
    pub reports: Vec<ReportSchedule>,
    /// Custom dashboard views (`[[view]]`).
    #[serde(default, rename = "view", skip_serializing_if = "Vec::is_empty")]
    pub views: Vec<View>,
    /// Rule-based user segments (`[[segment]]`), for behavioral profiles.
    #[serde(default, rename = "segment", skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<crate::segment_rule::Segment>,
    /// Funnels the scheduler computes (`[[funnel]]`), for behavioral profiles.
    #[serde(default, rename = "funnel", skip_serializing_if = "Vec::is_empty")]
    pub funnels: Vec<crate::sections::FunnelSpec>,
}

/// Why a profile was refused, naming the file (when there is one), the line and the field.
#[derive(Debug, Clone, PartialEq)]
pub enum ProfileError {
    /// The file could not be read.
    Io {
        /// The profile file.
        file: PathBuf,
        /// The operating system's error.
        message: String,
    },
    /// The TOML did not parse or did not fit the schema.
    Syntax {
        /// The profile file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message (what was found and what was expected).
        message: String,
    },
    /// A field has a value outside its rules.
    Invalid {
        /// The profile file, when the profile came from one.
        file: Option<PathBuf>,
        /// 1-based line of the field, when known.
        line: Option<usize>,
        /// Dotted path of the field, for example `settings.collection_interval`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ProfileError::Io { file, message } => write!(f, "{}: {message}", file.display()),
            ProfileError::Syntax {
                file,
                line,
                column,
                message,
            } => {
                write!(f, "{}:{line}:{column}: {message}", file.display())
            }
            ProfileError::Invalid {
                file,
                line,
                field,
                message,
            } => {
                match (file, line) {
                    (Some(file), Some(line)) => write!(f, "{}:{line}: ", file.display())?,
                    (Some(file), None) => write!(f, "{}: ", file.display())?,
                    _ => {}
                }
                write!(f, "{field}: {message}")
            }
        }
    }
}

impl std::error::Error for ProfileError {}

impl Profile {
    /// A profile with default settings and no sections.
    pub fn new(name: impl Into<String>, kind: ProfileType, settings: Settings) -> Self {
        Profile {
            name: name.into(),
            kind,
            agents: Vec::new(),
            settings,
            alerts: Vec::new(),
            models: ModelSettings::default(),
            reports: Vec::new(),
            views: Vec::new(),
            segments: Vec::new(),
            funnels: Vec::new(),
        }
    }

    /// The profile's id: its name lowercased, runs of other characters turned into `-`.
    pub fn id(&self) -> String {
        slug(&self.name)
    }

    /// Checks the rules serde cannot express, including the cross-field rules of every section.
    pub fn validate(&self) -> Result<(), ProfileError> {
        let invalid = |field: &str, message: String| {
            Err(ProfileError::Invalid {
                file: None,
                line: None,
                field: field.into(),
                message,
            })
        };
        if self.name.trim().is_empty() || self.id().is_empty() {
            return invalid("name", "must contain a letter or digit".into());
        }
        if self.name.len() > MAX_NAME_LEN {
            return invalid(
                "name",
                format!("{} bytes, at most {MAX_NAME_LEN}", self.name.len()),
            );
        }
        if let Some(p) = self.agents.iter().find(|p| p.trim().is_empty()) {
            return invalid("agents", format!("`{p}` is an empty pattern"));
        }
        let s = &self.settings;
        if s.collection_interval == 0 || s.collection_interval > MAX_COLLECTION_INTERVAL {
            return invalid(
                "settings.collection_interval",
                format!(
                    "{} must be 1-{MAX_COLLECTION_INTERVAL} seconds",
                    s.collection_interval
                ),
            );
        }
        if s.retention_period == 0 || s.retention_period > MAX_RETENTION_PERIOD {
            return invalid(
                "settings.retention_period",
                format!(
                    "{} must be 1-{MAX_RETENTION_PERIOD} days",
                    s.retention_period
                ),
            );
        }
        validate_sections(&self.alerts, &self.models, &self.reports, &self.views)
            .and_then(|()| crate::segment_rule::validate_segments(&self.segments))
            .and_then(|()| crate::sections::validate_funnels(&self.funnels))
            .or_else(|(field, message)| invalid(&field, message))
    }

    /// Whether the profile applies to an agent (its `agents` patterns, or every agent).
    pub fn applies_to(&self, agent_id: &str) -> bool {
        self.agents.is_empty() || self.agents.iter().any(|p| glob_match(p, agent_id))
    }

    /// Parses and validates profile TOML; `file` names the source in errors.
    pub fn from_toml(text: &str, file: &Path) -> Result<Profile, ProfileError> {
        let profile: Profile = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            let message = e.message().trim().to_string();
            ProfileError::Syntax {
                file: file.to_path_buf(),
                line,
                column,
                message,
            }
        })?;
        profile.validate().map_err(|e| match e {
            ProfileError::Invalid { field, message, .. } => ProfileError::Invalid {
                file: Some(file.to_path_buf()),
                line: locate(text, &field),
                field,
                message,
            },
            other => other,
        })?;
        Ok(profile)
    }

    /// Reads, parses and validates one profile file.
    pub fn load(file: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(file).map_err(|e| ProfileError::Io {
            file: file.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::from_toml(&text, file)
    }

    /// The profile as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return pattern == text;
    }
    if text.len() < first.len() + last.len() || !text.starts_with(first) || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The line where a dotted field (`settings.collection_interval`, `alert[1].threshold`) is
/// written, else the line of its table header.
pub fn locate(text: &str, field: &str) -> Option<usize> {
    let (table, key) = match field.rsplit_once('.') {
        Some((t, k)) => (t, k),
        None => ("", field),
    };
    let (table_name, table_index) = split_index(table);
    let (key_name, key_index) = split_index(key);
    let mut current = (String::new(), 0usize);
    let mut arrays: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut header_line = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(h) = line.strip_prefix("[[").and_then(|l| l.split("]]").next()) {
            let count = arrays.entry(h.trim().to_string()).or_insert(0);
            current = (h.trim().to_string(), *count);
            *count += 1;
            // A field that names a whole array entry (`alert[1]`) is located by its header.
            if table.is_empty() && current.0 == key_name && Some(current.1) == key_index {
                return Some(n + 1);
            }
        } else if let Some(h) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            current = (h.trim().to_string(), 0);
        }
        let in_table = current.0 == table_name && current.1 == table_index.unwrap_or(0);
        if in_table && line.starts_with('[') {
            header_line = Some(n + 1);
        }
        let assigns = line
            .strip_prefix(key_name)
            .is_some_and(|r| r.trim_start().starts_with('='));
        if in_table && assigns && key_index.is_none() {
            return Some(n + 1);
        }
    }
    header_line
}

fn split_index(part: &str) -> (&str, Option<usize>) {
    match part.strip_suffix(']').and_then(|p| p.split_once('[')) {
        Some((name, i)) => (name, i.parse().ok()),
        None => (part, None),
    }
}

/// Lowercases and joins runs of letters and digits with `-`.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for word in name
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push('-');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

/// Every valid profile in a directory (`*.toml`, sorted by file name) and the errors of the rest.
pub fn load_dir(dir: &Path) -> (Vec<Profile>, Vec<ProfileError>) {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(e) => {
            let error = ProfileError::Io {
                file: dir.to_path_buf(),
                message: e.to_string(),
            };
            return (Vec::new(), vec![error]);
        }
    };
    files.sort();
    let mut profiles = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        match Profile::load(&file) {
            Ok(p) => profiles.push(p),
            Err(e) => errors.push(e),
        }
    }
    (profiles, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"
name = "System Usage"
type = "usage"
[settings]
collection_interval = 60
retention_period = 30
aggregation_level = "minute"
"#;

    #[test]
    fn parses_the_seed_example() {
        let p = Profile::from_toml(SEED, Path::new("usage.toml")).unwrap();
        assert_eq!(p.kind, ProfileType::Usage);
        assert_eq!(p.id(), "system-usage");
        assert_eq!(p.settings, Settings::default());
        let again = Profile::from_toml(&p.to_toml(), Path::new("x.toml")).unwrap();
        assert_eq!(again, p);
    }

    #[test]
    fn defaults_fill_missing_settings() {
        let p = Profile::from_toml(
            "name = \"Perf\"\ntype = \"performance\"\n",
            Path::new("p.toml"),
        )
        .unwrap();
        assert_eq!(p.settings.collection_interval, 60);
        assert_eq!(p.settings.aggregation_level, AggregationLevel::Minute);
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let bad_type = SEED.replace("\"usage\"", "\"sales\"");
        let e = Profile::from_toml(&bad_type, Path::new("/etc/tda/profiles/a.toml")).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("/etc/tda/profiles/a.toml:3:8: unknown variant `sales`"),
            "{text}"
        );

        let zero = SEED.replace("collection_interval = 60", "collection_interval = 0");
        let e = Profile::from_toml(&zero, Path::new("b.toml")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "b.toml:5: settings.collection_interval: 0 must be 1-86400 seconds"
        );

        let unknown = SEED.replace("retention_period", "retention_days");
        let e = Profile::from_toml(&unknown, Path::new("c.toml")).unwrap_err();
        assert!(
            e.to_string().contains("unknown field `retention_days`"),
            "{e}"
        );

        let level = SEED.replace("\"minute\"", "\"week\"");
        assert!(Profile::from_toml(&level, Path::new("d.toml")).is_err());

        let rules = format!("{SEED}\n[[alert]]\nname = \"a\"\nkind = \"anomaly\"\nmetric = \"requests\"\n\n[[alert]]\nname = \"b\"\nkind = \"threshold\"\nmetric = \"error_rate\"\nthreshold = 0.05\nrecovery = 0.08\n");
        let e = Profile::from_toml(&rules, Path::new("e.toml")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "e.toml:19: alert[1].recovery: 0.08 must be <= threshold 0.05 for an `above` rule"
        );
        let segments = format!("{SEED}\n[[segment]]\nname = \"Exporters\"\nrule = \"uses(export) and sessions >= 3\"\n\n[[segment]]\nname = \"Bad\"\nrule = \"visits > 3\"\n");
        let e = Profile::from_toml(&segments, Path::new("s.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("s.toml:") && e.contains("segment[1].rule: `visits` is not"),
            "{e}"
        );
        let funnels = format!("{SEED}\n[[funnel]]\nname = \"Signup\"\nsteps = [\"landing\", \"pricing\"]\nwindow = \"2h\"\nmode = \"strict\"\n\n[[funnel]]\nname = \"Short\"\nsteps = [\"login\"]\n");
        let e = Profile::from_toml(&funnels, Path::new("f.toml")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.toml:17: funnel[1].steps: 2 to 20 features, none empty"
        );
        let ok = funnels.replace("steps = [\"login\"]", "steps = [\"login\", \"export\"]");
        let p = Profile::from_toml(&ok, Path::new("f.toml")).unwrap();
        assert_eq!(p.funnels[0].mode, crate::sections::FunnelMode::Strict);
        assert_eq!(
            p.funnels[1].window,
            crate::duration::HumanDuration::secs(86_400)
        );
        let missing = rules.replace("threshold = 0.05\n", "");
        let e = Profile::from_toml(&missing, Path::new("e.toml")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "e.toml:14: alert[1].threshold: required for a threshold rule"
        );
    }

    #[test]
    fn every_section_parses() {
        let text = format!("{SEED}agents = [\"web-*\"]\n");
        assert!(
            Profile::from_toml(&text, Path::new("x.toml")).is_err(),
            "agents must come before tables"
        );
        let text = format!("agents = [\"web-*\"]\n{SEED}\n[models]\nrun = [\"forecast\", \"anomaly\"]\nevery = \"30m\"\nhorizon = \"2d\"\n\n[[report]]\nname = \"weekly\"\nevery = \"weekly\"\nformats = [\"html\", \"json\"]\n\n[[view]]\ntitle = \"Requests\"\nquery = \"requests\"\nchart = \"line\"\n");
        let p = Profile::from_toml(&text, Path::new("x.toml")).unwrap();
        assert_eq!(p.models.every.0.as_secs(), 1800);
        assert_eq!(p.reports[0].formats.len(), 2);
        assert!(p.applies_to("web-3") && !p.applies_to("db-1"));
        assert_eq!(
            Profile::from_toml(&p.to_toml(), Path::new("y.toml")).unwrap(),
            p
        );
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", "anything"));
        assert!(glob_match("web-*", "web-1") && !glob_match("web-*", "db-1"));
        assert!(glob_match("*-eu-*", "web-eu-3") && !glob_match("*-eu-*", "web-us-3"));
        assert!(glob_match("a*a", "aa") && !glob_match("a*a", "a"));
        assert!(glob_match("exact", "exact") && !glob_match("exact", "exactly"));
    }

    #[test]
    fn slug_is_stable() {
        assert_eq!(slug("System Usage"), "system-usage");
        assert_eq!(slug("  API / latency (p95) "), "api-latency-p95");
        assert_eq!(slug("!!!"), "");
    }

    #[test]
    fn load_dir_keeps_good_profiles_and_reports_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), SEED).unwrap();
        std::fs::write(dir.path().join("b.toml"), "name = ").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let (good, bad) = load_dir(dir.path());
        assert_eq!(good.len(), 1);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].to_string().contains("b.toml"));
    }
}
