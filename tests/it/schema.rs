//! The committed JSON Schemas under `config/schema/` match the Rust types (run `scripts/schema`
//! after changing a config or profile type), and every example file points editors at its schema.

use std::path::Path;

fn config_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../config"))
}

#[test]
fn committed_schemas_are_up_to_date() {
    for (name, text) in tda_schema::json_schema::all() {
        let committed =
            std::fs::read_to_string(config_dir().join("schema").join(name)).unwrap_or_default();
        assert!(
            committed == text,
            "config/schema/{name} is stale: run scripts/schema"
        );
    }
}

#[test]
fn schemas_describe_every_documented_field() {
    let all = tda_schema::json_schema::all();
    let profile: serde_json::Value = serde_json::from_str(&all[0].1).unwrap();
    let props = profile["properties"].as_object().unwrap();
    for key in [
        "name", "type", "agents", "settings", "alert", "models", "report", "view",
    ] {
        assert!(props.contains_key(key), "profile schema lacks `{key}`");
    }
    assert_eq!(
        profile["additionalProperties"], false,
        "unknown keys are errors, in editors too"
    );
    let text = &all[0].1;
    assert!(
        text.contains("Seconds between samples"),
        "doc comments become descriptions"
    );
}

#[test]
fn example_files_name_their_schema() {
    let first_line = |p: &Path| {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        first_line(&config_dir().join("collector.toml")),
        "#:schema ./schema/collector.schema.json"
    );
    assert_eq!(
        first_line(&config_dir().join("agent.toml")),
        "#:schema ./schema/agent.schema.json"
    );
    for entry in std::fs::read_dir(config_dir().join("profiles")).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(
            first_line(&path),
            "#:schema ../schema/profile.schema.json",
            "{}",
            path.display()
        );
    }
}
