//! JSON Schemas of the profile, collector and agent files, generated from the Rust types so
//! editors (taplo, Even Better TOML) can complete and check them.

use schemars::{schema_for, JsonSchema};

use crate::config::{AgentConfig, CollectorConfig};
use crate::profile::Profile;

fn pretty<T: JsonSchema>(title: &str) -> String {
    let mut schema = schema_for!(T);
    schema.insert("title".into(), title.into());
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}

/// Every schema: (file name under `config/schema/`, JSON text).
pub fn all() -> Vec<(&'static str, String)> {
    vec![
        (
            "profile.schema.json",
            pretty::<Profile>("TD Analytics profile"),
        ),
        (
            "collector.schema.json",
            pretty::<CollectorConfig>("tda-collector configuration"),
        ),
        (
            "agent.schema.json",
            pretty::<AgentConfig>("tda-agent configuration"),
        ),
    ]
}
