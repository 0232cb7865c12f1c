//! The collector's layers, as ARCHITECTURE.md draws them, checked on the source: a module names
//! (`crate::…`) only modules of its own layer or of layers below, and modules of one layer do
//! not name each other in a cycle. A new top-level module must be placed in `LAYERS`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top to bottom.
const LAYERS: &[(&str, &[&str])] = &[
    ("edge", &["api", "server"]),
    ("runtime", &["app", "jobs", "reload"]),
    (
        "subsystems",
        &[
            "alert",
            "fleet",
            "report",
            "schedule",
            "dashboard",
            "ingest",
            "metrics",
            "auth",
            "model_state",
            "snapshot",
            "cardinality",
            "arrivals",
            "export",
            "migrate",
        ],
    ),
    ("analysis", &["query", "stats", "behavior", "predictive"]),
    ("storage", &["store", "profiles"]),
    ("codecs", &["sketch"]),
];

/// Every `crate::<module>` a source names outside its `#[cfg(test)]` modules and comments.
fn named(source: &str) -> BTreeSet<String> {
    let code: String = source
        .split("#[cfg(test)]\nmod ")
        .next()
        .unwrap_or("")
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                out.insert(ident(item.trim()));
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

fn ident(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// Module (the first path component under `src/`) → the modules its files name.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let module = first.trim_end_matches(".rs").to_string();
            if ["lib", "bin", "properties"].contains(&module.as_str()) {
                continue; // the crate root, the binaries, and a test-only module
            }
            let names = named(&std::fs::read_to_string(&path).unwrap());
            let entry = deps.entry(module.clone()).or_default();
            entry.extend(names.into_iter().filter(|n| *n != module));
        }
    }
    deps
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&module))
}

#[test]
fn no_module_names_a_layer_above_its_own() {
    let mut wrong = Vec::new();
    for (module, names) in graph() {
        let Some(own) = layer_of(&module) else {
            wrong.push(format!("{module}: not placed in LAYERS"));
            continue;
        };
        for n in names {
            match layer_of(&n) {
                Some(l) if l < own => wrong.push(format!(
                    "{module} ({}) names {n} ({})",
                    LAYERS[own].0, LAYERS[l].0
                )),
                None => wrong.push(format!("{module} names {n}, not placed in LAYERS")),
                _ => {}
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn modules_do_not_name_each_other_in_a_cycle() {
    let deps = graph();
    // A module is on a cycle when it can reach itself.
    for start in deps.keys() {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&String> = deps[start].iter().collect();
        while let Some(m) = todo.pop() {
            assert_ne!(m, start, "{start} reaches itself through {seen:?}");
            if seen.insert(m.clone()) {
                todo.extend(deps.get(m).into_iter().flatten());
            }
        }
    }
}
