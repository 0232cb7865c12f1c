//! The shipped example configuration and profiles load and validate.

use std::path::Path;

use tda_schema::config::{AgentConfig, CollectorConfig};
use tda_schema::profile::load_dir;
use tda_schema::ProfileType;

fn config_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../config"))
}

#[test]
fn example_configs_load() {
    let agent = AgentConfig::load(&config_dir().join("agent.toml")).unwrap();
    assert_eq!(agent.intake.listen.to_string(), "127.0.0.1:7301");
    let collector = CollectorConfig::load(&config_dir().join("collector.toml")).unwrap();
    assert_eq!(collector.listen.to_string(), "0.0.0.0:7300");
}

#[test]
fn one_example_profile_per_type() {
    let (profiles, errors) = load_dir(&config_dir().join("profiles"));
    assert!(errors.is_empty(), "{errors:?}");
    let mut kinds: Vec<ProfileType> = profiles.iter().map(|p| p.kind).collect();
    kinds.sort_by_key(|k| k.as_str());
    assert_eq!(
        kinds,
        vec![
            ProfileType::Behavioral,
            ProfileType::Performance,
            ProfileType::Predictive,
            ProfileType::Usage
        ]
    );
}
