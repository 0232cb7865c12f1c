//! The scheduler's passes over real stores in a temp dir, at chosen times: when a behavioral
//! profile's analyses run, rerun and stay, and what a predictive profile's streams score.

use std::path::Path;

use tda_schema::wire::BATCH_FORMAT_VERSION;
use tda_schema::{Batch, Event, Profile, Timestamp};

use crate::arrivals::Arrivals;
use crate::model_state::ModelStore;
use crate::profiles::Entry;
use crate::schedule::{run_models, Models};
use crate::store::{SledStore, Storage};

/// 2026-11-28T10:00:00Z.
const T0: i64 = 1_795_860_000_000;
const MINUTE: i64 = 60_000;

fn entry(id: &str, hash: &str, text: &str) -> Entry {
    Entry {
        id: id.into(),
        file: format!("{id}.toml").into(),
        hash: hash.into(),
        loaded_at: String::new(),
        profile: Profile::from_toml(text, Path::new("p.toml")).unwrap(),
    }
}

/// Users `u<first>..` (`users` of them) each doing `signup` then `export` a minute later, from
/// `at`.
fn store_journeys(store: &SledStore, at: i64, first: usize, users: usize) {
    let ev = |t: i64, u: usize, f: &str| -> Event {
        serde_json::from_value(
            serde_json::json!({"timestamp": t, "user_id": format!("u{u}"), "feature": f}),
        )
        .unwrap()
    };
    let events = (first..first + users)
        .flat_map(|u| [ev(at, u, "signup"), ev(at + MINUTE, u, "export")])
        .collect();
    let batch = Batch {
        version: BATCH_FORMAT_VERSION,
        agent_id: "a".into(),
        batch_id: format!("b{at}"),
        created_at: Timestamp(at),
        events,
        samples: Vec::new(),
    };
    store.append(&batch).unwrap();
}

const BEHAVIORAL: &str = "name = \"Journeys\"\ntype = \"behavioral\"\n\n[models]\nevery = \"1h\"\nlookback = \"1d\"\n\n[[funnel]]\nname = \"activation\"\nsteps = [\"signup\", \"export\"]\n";

#[test]
fn a_behavioral_profile_runs_once_per_every_and_again_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let data = SledStore::open(&dir.path().join("data")).unwrap();
    let state = ModelStore::open(&dir.path().join("models")).unwrap();
    let ctx = Models {
        store: &data,
        state: &state,
    };
    let mut arrivals = Arrivals::default();
    store_journeys(&data, T0, 0, 3);
    let now = T0 + 10 * MINUTE;
    run_models(
        &ctx,
        &[entry("journeys", "v1", BEHAVIORAL)],
        now,
        &mut arrivals,
    );
    let ran = state.load("journeys").unwrap();
    assert_eq!(ran.last_run_ms, now);
    let result = ran.result.expect("a result");
    assert_eq!(result["funnels"][0]["name"], "activation");
    assert_eq!(result["funnels"][0]["funnel"]["steps"][1]["users"], 3);

    // More users, but `every` (1h) has not passed and the profile is the same: it stays.
    store_journeys(&data, T0 + 20 * MINUTE, 3, 2);
    run_models(
        &ctx,
        &[entry("journeys", "v1", BEHAVIORAL)],
        now + 30 * MINUTE,
        &mut arrivals,
    );
    assert_eq!(state.load("journeys").unwrap().last_run_ms, now);
    // An edited profile runs at once; so does one whose `every` passed.
    run_models(
        &ctx,
        &[entry("journeys", "v2", BEHAVIORAL)],
        now + 31 * MINUTE,
        &mut arrivals,
    );
    let rerun = state.load("journeys").unwrap();
    assert_eq!(rerun.last_run_ms, now + 31 * MINUTE);
    assert_eq!(rerun.profile_hash, "v2");
    let steps = &rerun.result.unwrap()["funnels"][0]["funnel"]["steps"];
    assert_eq!(steps[1]["users"], 5);
    run_models(
        &ctx,
        &[entry("journeys", "v2", BEHAVIORAL)],
        now + 92 * MINUTE,
        &mut arrivals,
    );
    assert_eq!(
        state.load("journeys").unwrap().last_run_ms,
        now + 92 * MINUTE
    );
}

#[test]
fn a_usage_profile_has_no_scheduled_models() {
    let dir = tempfile::tempdir().unwrap();
    let data = SledStore::open(&dir.path().join("data")).unwrap();
    let state = ModelStore::open(&dir.path().join("models")).unwrap();
    let ctx = Models {
        store: &data,
        state: &state,
    };
    let usage = entry("web", "v1", "name = \"Web\"\ntype = \"usage\"\n");
    run_models(&ctx, &[usage], T0, &mut Arrivals::default());
    assert_eq!(state.load("web").unwrap().last_run_ms, 0, "never ran");
}
