//! The collector's profiles: loaded from the profiles directory, listed, and created as files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::Serialize;
use tda_schema::profile::{load_dir, ProfileError};
use tda_schema::{AggregationLevel, Profile, ProfileType};

/// Why a profile could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// A field breaks a rule.
    #[error(transparent)]
    Invalid(#[from] ProfileError),
    /// A profile with the same id exists.
    #[error("a profile named `{0}` already exists")]
    Duplicate(String),
    /// The file could not be written.
    #[error("writing {file}: {message}")]
    Io {
        /// The profile file.
        file: PathBuf,
        /// The operating system's error.
        message: String,
    },
}

/// A loaded profile and the file it came from.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Profile id (file stem for created profiles, slug of the name).
    pub id: String,
    /// The profile file.
    pub file: PathBuf,
    /// The profile.
    #[serde(flatten)]
    pub profile: Profile,
}

/// The profiles in force, by id, and the errors of files that did not load.
pub struct Profiles {
    dir: PathBuf,
    entries: RwLock<BTreeMap<String, Entry>>,
    errors: RwLock<Vec<String>>,
}

impl Profiles {
    /// Loads every `*.toml` of `dir` (creating it if missing); bad files are reported, not fatal.
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let (profiles, errors) = load_dir(dir);
        let mut entries = BTreeMap::new();
        let mut messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        for p in profiles {
            let id = p.id();
            if entries.contains_key(&id) {
                messages.push(format!(
                    "profile `{}` duplicates id `{id}`; ignored",
                    p.name
                ));
                continue;
            }
            let file = dir.join(format!("{id}.toml"));
            entries.insert(
                id.clone(),
                Entry {
                    id,
                    file,
                    profile: p,
                },
            );
        }
        for m in &messages {
            tracing::warn!(error = %m, "profile not loaded");
        }
        Ok(Profiles {
            dir: dir.to_path_buf(),
            entries: RwLock::new(entries),
            errors: RwLock::new(messages),
        })
    }

    /// Every profile, by id.
    pub fn list(&self) -> Vec<Entry> {
        self.entries
            .read()
            .map(|e| e.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Load errors of files that are not in force.
    pub fn errors(&self) -> Vec<String> {
        self.errors.read().map(|e| e.clone()).unwrap_or_default()
    }

    /// The profile with this id.
    pub fn get(&self, id: &str) -> Option<Entry> {
        self.entries.read().ok()?.get(id).cloned()
    }

    /// The aggregation level for stats of a type: the named profile's, else the first profile of
    /// that type (by id), else minute.
    pub fn aggregation_for(
        &self,
        kind: ProfileType,
        id: Option<&str>,
    ) -> Result<(Option<String>, AggregationLevel), String> {
        if let Some(id) = id {
            let e = self
                .get(id)
                .ok_or_else(|| format!("profile: no profile `{id}`"))?;
            return Ok((Some(e.id), e.profile.settings.aggregation_level));
        }
        let first = self.list().into_iter().find(|e| e.profile.kind == kind);
        Ok(match first {
            Some(e) => (Some(e.id), e.profile.settings.aggregation_level),
            None => (None, AggregationLevel::Minute),
        })
    }

    /// Validates a profile and writes it as `<dir>/<id>.toml` (atomically), then puts it in force.
    pub fn create(&self, profile: Profile) -> Result<Entry, CreateError> {
        profile.validate()?;
        let id = profile.id();
        let file = self.dir.join(format!("{id}.toml"));
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.contains_key(&id) || file.exists() {
            return Err(CreateError::Duplicate(profile.name));
        }
        let io = |e: std::io::Error| CreateError::Io {
            file: file.clone(),
            message: e.to_string(),
        };
        let tmp = self.dir.join(format!(".{id}.toml.tmp"));
        std::fs::write(&tmp, profile.to_toml()).map_err(io)?;
        std::fs::rename(&tmp, &file).map_err(io)?;
        let entry = Entry {
            id: id.clone(),
            file,
            profile,
        };
        entries.insert(id, entry.clone());
        tracing::info!(profile = %entry.id, file = %entry.file.display(), "profile created");
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tda_schema::Settings;

    fn profile(name: &str, kind: ProfileType) -> Profile {
        Profile {
            name: name.into(),
            kind,
            settings: Settings::default(),
        }
    }

    #[test]
    fn create_writes_a_file_and_refuses_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let profiles = Profiles::load(dir.path()).unwrap();
        let e = profiles
            .create(profile("System Usage", ProfileType::Usage))
            .unwrap();
        assert_eq!(e.file, dir.path().join("system-usage.toml"));
        let on_disk = Profile::load(&e.file).unwrap();
        assert_eq!(on_disk, e.profile);
        assert!(matches!(
            profiles.create(profile("system  usage", ProfileType::Usage)),
            Err(CreateError::Duplicate(_))
        ));
        let reloaded = Profiles::load(dir.path()).unwrap();
        assert_eq!(reloaded.list().len(), 1);
    }

    #[test]
    fn aggregation_follows_the_profile() {
        let dir = tempfile::tempdir().unwrap();
        let profiles = Profiles::load(dir.path()).unwrap();
        assert_eq!(
            profiles.aggregation_for(ProfileType::Usage, None).unwrap(),
            (None, AggregationLevel::Minute)
        );
        let mut p = profile("Hourly", ProfileType::Usage);
        p.settings.aggregation_level = AggregationLevel::Hour;
        profiles.create(p).unwrap();
        assert_eq!(
            profiles.aggregation_for(ProfileType::Usage, None).unwrap(),
            (Some("hourly".into()), AggregationLevel::Hour)
        );
        assert!(profiles
            .aggregation_for(ProfileType::Usage, Some("nope"))
            .is_err());
    }
}
