//! The collector's profiles: one registry entry per file of the profiles directory, reloaded
//! live. A file that fails to load keeps its last good version in force; an unchanged file (same
//! content hash) is left alone, so whatever runs for it keeps running.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::Serialize;
use tda_schema::profile::ProfileError;
use tda_schema::{AggregationLevel, Profile, ProfileType, Timestamp};

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

/// A profile in force and where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Profile id (slug of the name).
    pub id: String,
    /// The profile file.
    pub file: PathBuf,
    /// Content hash of the version in force.
    pub hash: String,
    /// When the version in force was loaded, RFC 3339.
    pub loaded_at: String,
    /// The profile.
    #[serde(flatten)]
    pub profile: Profile,
}

/// The state of one profile file.
#[derive(Debug, Clone, Serialize)]
pub struct FileStatus {
    /// The profile file.
    pub file: PathBuf,
    /// `active` when the file's current content is in force, `error` when it failed to load
    /// (the last good version, if any, stays in force).
    pub status: &'static str,
    /// Content hash of the file as last read.
    pub hash: String,
    /// Why the current content was refused (`file:line:column: …`).
    pub last_error: Option<String>,
    /// The version in force, if any.
    pub active: Option<Entry>,
}

/// Counters of the reloads, for the API and `/metrics`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadStats {
    /// Reloads run since start (the first load included).
    pub reloads_total: u64,
    /// Whether every file loaded at the last reload.
    pub last_reload_ok: bool,
    /// When the last reload ran, RFC 3339.
    pub last_reload_at: Option<String>,
    /// When a reload last loaded every file, RFC 3339.
    pub last_success_at: Option<String>,
}

/// What one reload changed.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ReloadReport {
    /// Ids of profiles loaded or replaced.
    pub changed: Vec<String>,
    /// Ids of profiles whose file was deleted.
    pub removed: Vec<String>,
    /// Errors of files that failed to load.
    pub errors: Vec<String>,
}

/// The profiles directory and what it holds.
pub struct Profiles {
    dir: PathBuf,
    files: RwLock<BTreeMap<PathBuf, FileStatus>>,
    stats: RwLock<ReloadStats>,
}

/// FNV-1a, 64 bits, as hex: a stable content hash.
pub fn content_hash(bytes: &[u8]) -> String {
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{h:016x}")
}

impl Profiles {
    /// Loads every `*.toml` of `dir` (creating it if missing); bad files are reported, not fatal.
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let profiles = Profiles {
            dir: dir.to_path_buf(),
            files: RwLock::default(),
            stats: RwLock::default(),
        };
        profiles.reload();
        Ok(profiles)
    }

    /// Every profile in force, by id.
    pub fn list(&self) -> Vec<Entry> {
        let files = self.files.read().unwrap_or_else(|p| p.into_inner());
        let mut entries: Vec<Entry> = files.values().filter_map(|f| f.active.clone()).collect();
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        entries
    }

    /// The state of every file.
    pub fn status(&self) -> Vec<FileStatus> {
        self.files
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Reload counters.
    pub fn stats(&self) -> ReloadStats {
        self.stats.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Errors of files whose current content is not in force.
    pub fn errors(&self) -> Vec<String> {
        self.status()
            .into_iter()
            .filter_map(|f| f.last_error)
            .collect()
    }

    /// The profile with this id.
    pub fn get(&self, id: &str) -> Option<Entry> {
        self.list().into_iter().find(|e| e.id == id)
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

    /// The sampling interval for an agent: the shortest `collection_interval` of the performance
    /// profiles that apply to it, with their ids.
    pub fn sampling_for(&self, agent_id: &str) -> (Option<u64>, Vec<String>) {
        let applying: Vec<Entry> = self
            .list()
            .into_iter()
            .filter(|e| {
                e.profile.kind == ProfileType::Performance && e.profile.applies_to(agent_id)
            })
            .collect();
        let interval = applying
            .iter()
            .map(|e| e.profile.settings.collection_interval)
            .min();
        (interval, applying.into_iter().map(|e| e.id).collect())
    }

    fn toml_files(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        files
    }

    /// Re-reads the directory: loads new and changed files, keeps unchanged ones as they are,
    /// keeps the last good version of files that fail, drops deleted files.
    pub fn reload(&self) -> ReloadReport {
        let mut report = ReloadReport::default();
        let mut files = self.files.write().unwrap_or_else(|p| p.into_inner());
        let present = self.toml_files();
        let gone: Vec<PathBuf> = files
            .keys()
            .filter(|f| !present.contains(f))
            .cloned()
            .collect();
        for file in gone {
            if let Some(id) = files.remove(&file).and_then(|f| f.active).map(|e| e.id) {
                tracing::info!(profile = %id, file = %file.display(), "profile removed");
                report.removed.push(id);
            }
        }
        for file in present {
            load_file(&mut files, &file, &mut report);
        }
        let now = Timestamp::now().to_rfc3339();
        let ok = files.values().all(|f| f.last_error.is_none());
        let mut stats = self.stats.write().unwrap_or_else(|p| p.into_inner());
        stats.reloads_total += 1;
        stats.last_reload_ok = ok;
        stats.last_reload_at = Some(now.clone());
        if ok {
            stats.last_success_at = Some(now);
        }
        report
    }

    /// Validates a profile and writes it as `<dir>/<id>.toml` (atomically), then loads it.
    pub fn create(&self, profile: Profile) -> Result<Entry, CreateError> {
        profile.validate()?;
        let id = profile.id();
        let file = self.dir.join(format!("{id}.toml"));
        if self.get(&id).is_some() || file.exists() {
            return Err(CreateError::Duplicate(profile.name));
        }
        let io = |e: std::io::Error| CreateError::Io {
            file: file.clone(),
            message: e.to_string(),
        };
        tda_daemon::durable::write_atomic(&file, profile.to_toml().as_bytes()).map_err(io)?;
        self.reload();
        self.get(&id).ok_or(CreateError::Duplicate(profile.name))
    }
}

/// Loads one file into the registry unless its content is unchanged.
fn load_file(files: &mut BTreeMap<PathBuf, FileStatus>, file: &Path, report: &mut ReloadReport) {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            let error = ProfileError::Io {
                file: file.to_path_buf(),
                message: e.to_string(),
            };
            return refuse(files, file, String::new(), error.to_string(), report);
        }
    };
    let hash = content_hash(text.as_bytes());
    if files.get(file).is_some_and(|f| f.hash == hash) {
        return;
    }
    let profile = match Profile::from_toml(&text, file) {
        Ok(p) => p,
        Err(e) => return refuse(files, file, hash, e.to_string(), report),
    };
    let id = profile.id();
    if let Some(other) = files
        .values()
        .find(|f| f.file != file && f.active.as_ref().is_some_and(|e| e.id == id))
    {
        let message = format!(
            "{}: name `{}` gives id `{id}`, already used by {}",
            file.display(),
            profile.name,
            other.file.display()
        );
        return refuse(files, file, hash, message, report);
    }
    let entry = Entry {
        id: id.clone(),
        file: file.to_path_buf(),
        hash: hash.clone(),
        loaded_at: Timestamp::now().to_rfc3339(),
        profile,
    };
    tracing::info!(profile = %id, file = %file.display(), %hash, "profile loaded");
    files.insert(
        file.to_path_buf(),
        FileStatus {
            file: file.to_path_buf(),
            status: "active",
            hash,
            last_error: None,
            active: Some(entry),
        },
    );
    report.changed.push(id);
}

/// Records a refused version; the last good version stays in force.
fn refuse(
    files: &mut BTreeMap<PathBuf, FileStatus>,
    file: &Path,
    hash: String,
    error: String,
    report: &mut ReloadReport,
) {
    tracing::warn!(error = %error, "profile not loaded; the last good version stays in force");
    let active = files.get(file).and_then(|f| f.active.clone());
    files.insert(
        file.to_path_buf(),
        FileStatus {
            file: file.to_path_buf(),
            status: "error",
            hash,
            last_error: Some(error.clone()),
            active,
        },
    );
    report.errors.push(error);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tda_schema::Settings;

    fn profile(name: &str, kind: ProfileType) -> Profile {
        Profile::new(name, kind, Settings::default())
    }

    #[test]
    fn create_writes_a_file_and_refuses_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let profiles = Profiles::load(dir.path()).unwrap();
        let e = profiles
            .create(profile("System Usage", ProfileType::Usage))
            .unwrap();
        assert_eq!(e.file, dir.path().join("system-usage.toml"));
        assert_eq!(Profile::load(&e.file).unwrap(), e.profile);
        assert!(matches!(
            profiles.create(profile("system  usage", ProfileType::Usage)),
            Err(CreateError::Duplicate(_))
        ));
        assert_eq!(Profiles::load(dir.path()).unwrap().list().len(), 1);
    }

    #[test]
    fn reload_keeps_unchanged_and_last_good_versions() {
        let dir = tempfile::tempdir().unwrap();
        let write = |f: &str, t: &str| std::fs::write(dir.path().join(f), t).unwrap();
        write("a.toml", "name = \"A\"\ntype = \"usage\"\n");
        write(
            "b.toml",
            "name = \"B\"\ntype = \"performance\"\n[settings]\ncollection_interval = 10\n",
        );
        let profiles = Profiles::load(dir.path()).unwrap();
        let a_before = profiles.get("a").unwrap();
        assert_eq!(
            profiles.reload(),
            ReloadReport::default(),
            "nothing changed"
        );

        write(
            "b.toml",
            "name = \"B\"\ntype = \"performance\"\n[settings]\ncollection_interval = 0\n",
        );
        let report = profiles.reload();
        assert_eq!(
            report.errors,
            vec![format!(
                "{}:4: settings.collection_interval: 0 must be 1-86400 seconds",
                dir.path().join("b.toml").display()
            )]
        );
        assert_eq!(
            profiles
                .get("b")
                .unwrap()
                .profile
                .settings
                .collection_interval,
            10,
            "last good version in force"
        );
        assert!(!profiles.stats().last_reload_ok);
        assert_eq!(
            profiles.get("a").unwrap().loaded_at,
            a_before.loaded_at,
            "unchanged profile untouched"
        );

        write(
            "b.toml",
            "name = \"B\"\ntype = \"performance\"\n[settings]\ncollection_interval = 5\n",
        );
        assert_eq!(profiles.reload().changed, vec!["b".to_string()]);
        assert_eq!(
            profiles.sampling_for("any"),
            (Some(5), vec!["b".to_string()])
        );
        assert!(profiles.stats().last_reload_ok);

        std::fs::remove_file(dir.path().join("b.toml")).unwrap();
        assert_eq!(profiles.reload().removed, vec!["b".to_string()]);
        assert_eq!(profiles.sampling_for("any"), (None, vec![]));
    }

    #[test]
    fn a_second_file_with_the_same_id_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.toml"),
            "name = \"Same\"\ntype = \"usage\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.toml"),
            "name = \"same\"\ntype = \"usage\"\n",
        )
        .unwrap();
        let profiles = Profiles::load(dir.path()).unwrap();
        assert_eq!(profiles.list().len(), 1);
        assert!(
            profiles.errors()[0].contains("already used by"),
            "{:?}",
            profiles.errors()
        );
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
