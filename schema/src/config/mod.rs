//! The daemons' own configuration files, with defaults and validation: `agent.toml`
//! ([`agent`]) and `collector.toml` ([`collector`]); errors that name the file and place, and
//! secrets read from files.

mod agent;
mod collector;

pub use agent::*;
pub use collector::*;

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::profile::line_col;

/// A configuration file that could not be used, naming the file, the place and the problem.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", file.display(), place.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
pub struct ConfigError {
    /// The configuration file.
    pub file: PathBuf,
    /// 1-based line and column, for parse errors.
    pub place: Option<(usize, usize)>,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// An error about a whole file.
    pub fn new(file: &Path, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            place: None,
            message: message.into(),
        }
    }
}

fn load_toml<T: DeserializeOwned>(file: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|e| ConfigError::new(file, e.to_string()))?;
    toml::from_str(&text).map_err(|e| ConfigError {
        file: file.to_path_buf(),
        place: e.span().map(|s| line_col(&text, s.start)),
        message: e.message().trim().to_string(),
    })
}

/// Reads a secret from a file: the first non-empty line, trimmed.
pub fn read_secret(file: &Path) -> Result<String, ConfigError> {
    read_secrets(file)?
        .into_iter()
        .next()
        .ok_or_else(|| ConfigError::new(file, "no token in file"))
}

/// Reads every secret of a file: its non-empty lines that are not `#` comments, trimmed.
pub fn read_secrets(file: &Path) -> Result<Vec<String>, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|e| ConfigError::new(file, e.to_string()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// Resolves a path relative to the directory of the config file that named it.
fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// TLS on the collector's listener.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// PEM certificate chain the collector presents, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key of the certificate (PKCS#8, PKCS#1 or SEC1); keep it readable by the
    /// collector's user only.
    pub key_file: PathBuf,
    /// PEM CA certificates that sign the agents' client certificates: with it set, a client
    /// without a certificate this CA signed is refused in the handshake (mutual TLS).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

pub(crate) fn default_true() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn agent_defaults_and_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "agent.toml",
            "profiles_dir = \"profiles\"\n[collector]\ntoken_file = \"tok\"\n",
        );
        let cfg = AgentConfig::load(&f).unwrap();
        assert_eq!(cfg.intake.listen.port(), 7301);
        assert_eq!(cfg.profiles_dir.unwrap(), dir.path().join("profiles"));
        assert_eq!(cfg.collector.token_file.unwrap(), dir.path().join("tok"));
        assert_eq!(cfg.batch.max_events, 5_000);
    }

    #[test]
    fn collector_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "collector.toml",
            "listen = \"0.0.0.0:7300\"\nlisten_port = 1\n",
        );
        let e = CollectorConfig::load(&f).unwrap_err().to_string();
        assert!(
            e.contains("collector.toml:2:1: unknown field `listen_port`"),
            "{e}"
        );
        assert!(e.contains("unknown field `listen_port`"), "{e}");
        let f = write(dir.path(), "c2.toml", "[limits]\nmax_body_bytes = 0\n");
        assert!(CollectorConfig::load(&f)
            .unwrap_err()
            .to_string()
            .contains("max_body_bytes"));
    }

    #[test]
    fn collector_profiles_dir_defaults_under_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "collector.toml", "data_dir = \"state\"\n");
        let cfg = CollectorConfig::load(&f).unwrap();
        assert_eq!(
            cfg.profiles_dir(),
            dir.path().join("state/analytics/profiles")
        );
    }

    #[test]
    fn secrets_skip_comments() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "tok", "# agent token\n\n  s3cret  \n");
        assert_eq!(read_secret(&f).unwrap(), "s3cret");
        let f = write(dir.path(), "empty", "\n");
        assert!(read_secret(&f).is_err());
    }
}
