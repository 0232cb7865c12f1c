//! Analytics profiles: the TOML files that say what to collect, how often, how long to keep it and at what granularity.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The four analytics families of the seed document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// One analytics profile, as written in `<profiles_dir>/<id>.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Human name, unique among profiles (compared by its id).
    pub name: String,
    /// Analytics family: usage, performance, predictive or behavioral.
    #[serde(rename = "type")]
    pub kind: ProfileType,
    /// Collection, retention and aggregation settings.
    #[serde(default)]
    pub settings: Settings,
}

/// Why a profile was refused, naming the file (when there is one) and the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProfileError {
    /// The file could not be read.
    #[error("{file}: {message}")]
    Io {
        /// The profile file.
        file: PathBuf,
        /// The operating system's error.
        message: String,
    },
    /// The TOML did not parse or did not fit the schema (the message has line and column).
    #[error("{file}: {message}")]
    Parse {
        /// The profile file.
        file: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A field has a value outside its rules.
    #[error("{field}: {message}")]
    Invalid {
        /// Dotted path of the field, for example `settings.collection_interval`.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl Profile {
    /// The profile's id: its name lowercased, runs of other characters turned into `-`.
    pub fn id(&self) -> String {
        slug(&self.name)
    }

    /// Checks the rules serde cannot express.
    pub fn validate(&self) -> Result<(), ProfileError> {
        let invalid = |field, message: String| Err(ProfileError::Invalid { field, message });
        if self.name.trim().is_empty() || self.id().is_empty() {
            return invalid("name", "must contain a letter or digit".into());
        }
        if self.name.len() > MAX_NAME_LEN {
            return invalid(
                "name",
                format!("{} bytes, at most {MAX_NAME_LEN}", self.name.len()),
            );
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
        Ok(())
    }

    /// Parses and validates profile TOML; `file` names the source in errors.
    pub fn from_toml(text: &str, file: &Path) -> Result<Profile, ProfileError> {
        let profile: Profile = toml::from_str(text).map_err(|e| ProfileError::Parse {
            file: file.to_path_buf(),
            message: one_line(&e.to_string()),
        })?;
        profile.validate().map_err(|e| match e {
            ProfileError::Invalid { field, message } => ProfileError::Parse {
                file: file.to_path_buf(),
                message: format!("{field}: {message}"),
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

/// Collapses a multi-line parser message (TOML errors draw a caret diagram) into one line.
pub fn one_line(message: &str) -> String {
    let mut lines = message.lines().map(str::trim).filter(|l| !l.is_empty());
    let head = lines.next().unwrap_or_default().to_string();
    // toml's layout: "TOML parse error at line L, column C", the source excerpt, then the message.
    let last = message
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or_default();
    if head == last {
        head
    } else {
        format!(
            "{}: {last}",
            head.trim_start_matches("TOML parse error at ")
        )
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
            text.starts_with("/etc/tda/profiles/a.toml: line 3, column 8"),
            "{text}"
        );
        assert!(text.contains("unknown variant `sales`"), "{text}");

        let zero = SEED.replace("collection_interval = 60", "collection_interval = 0");
        let e = Profile::from_toml(&zero, Path::new("b.toml")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "b.toml: settings.collection_interval: 0 must be 1-86400 seconds"
        );

        let unknown = SEED.replace("retention_period", "retention_days");
        let e = Profile::from_toml(&unknown, Path::new("c.toml")).unwrap_err();
        assert!(
            e.to_string().contains("unknown field `retention_days`"),
            "{e}"
        );

        let level = SEED.replace("\"minute\"", "\"week\"");
        assert!(Profile::from_toml(&level, Path::new("d.toml")).is_err());
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
