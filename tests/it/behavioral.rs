//! Behavioral analytics against a real collector: funnels, sessions, journeys and retention over
//! generated users equal counts computed independently here by brute force.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tda_tests::*;

const MIN: i64 = 60_000;
const DAY: i64 = 86_400_000;
/// Each user's (time, feature), oldest first.
type Users = BTreeMap<String, Vec<(i64, &'static str)>>;

const FEATURES: [&str; 5] = ["login", "search", "export", "help", "logout"];

/// 120 users over 4 days: each day a user may visit (pseudo-random), doing 1-6 features a few
/// minutes apart. Returns each user's (time, feature) in order, and the first day's start.
fn generate() -> (Users, i64) {
    generate_users(120)
}

/// `n` users' events over four days, from a fixed seed.
fn generate_users(n: usize) -> (Users, i64) {
    let day0 = (now_ms() / DAY - 5) * DAY;
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let mut users = BTreeMap::new();
    for u in 0..n {
        let mut events = Vec::new();
        for d in 0..4 {
            if next(3) == 0 {
                continue;
            }
            let mut t = day0 + d * DAY + (next(600) as i64 + 60) * MIN;
            for _ in 0..=next(6) {
                events.push((t, FEATURES[next(5) as usize]));
                t += (next(40) as i64 + 1) * MIN;
            }
        }
        if !events.is_empty() {
            users.insert(format!("user-{u:03}"), events);
        }
    }
    (users, day0)
}

fn post_all(c: &Daemon, users: &Users) {
    let events: Vec<Value> = users
        .iter()
        .flat_map(|(u, list)| {
            list.iter()
                .map(move |(t, f)| json!({"timestamp": t, "user_id": u, "feature": f}))
        })
        .collect();
    let body = json!({"version": 1, "agent_id": "t", "batch_id": "behavior", "created_at": now_ms(), "events": events});
    let (status, v) = post(
        &format!("{}/v1/batches", c.url),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        body.to_string().into_bytes(),
    );
    assert_eq!(status, 200, "{v}");
}

/// Users reaching each step of an ordered funnel within `window` of an entry, best entry each.
fn brute_force_funnel(
    users: &BTreeMap<String, Vec<(i64, &str)>>,
    steps: &[&str],
    window: i64,
) -> Vec<u64> {
    let mut reached = vec![0u64; steps.len()];
    for events in users.values() {
        let mut best = 0;
        for (i, (t0, f)) in events.iter().enumerate() {
            if *f != steps[0] {
                continue;
            }
            let mut k = 1;
            for (t, f) in &events[i + 1..] {
                if t - t0 > window || k == steps.len() {
                    break;
                }
                if *f == steps[k] {
                    k += 1;
                }
            }
            best = best.max(k);
        }
        for r in reached.iter_mut().take(best) {
            *r += 1;
        }
    }
    reached
}

fn brute_force_sessions(users: &Users, timeout: i64) -> u64 {
    users
        .values()
        .map(|e| 1 + e.windows(2).filter(|w| w[1].0 - w[0].0 > timeout).count() as u64)
        .sum()
}

#[test]
fn funnels_sessions_and_retention_equal_brute_force_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(tmp.path(), "");
    setup.profile(
        "behavior.toml",
        "name = \"Behavior\"\ntype = \"behavioral\"\n[[segment]]\nname = \"Exporters\"\nrule = \"uses(export) and events >= 5\"\n",
    );
    let c = setup.start();
    let (users, day0) = generate();
    post_all(&c, &users);
    let range = format!("from={day0}&to={}", day0 + 4 * DAY);
    let get = |path: &str| {
        let (status, v) = get_json(&format!("{}{path}", c.url));
        assert_eq!(status, 200, "{path}: {v}");
        v
    };

    let steps = ["login", "search", "export"];
    let f = get(&format!(
        "/api/v1/funnels?{range}&steps=login,search,export&window=1h"
    ));
    let got: Vec<u64> = f["funnel"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["users"].as_u64().unwrap())
        .collect();
    let want = brute_force_funnel(&users, &steps, 3_600_000);
    assert!(
        want[2] > 0 && want[0] > want[2],
        "the data exercises the funnel: {want:?}"
    );
    assert_eq!(got, want, "{f}");

    let s = get(&format!("/api/v1/sessions?{range}"));
    assert_eq!(
        s["sessions"].as_u64(),
        Some(brute_force_sessions(&users, 30 * MIN)),
        "{s}"
    );
    assert_eq!(s["users"].as_u64(), Some(users.len() as u64));

    let r = get(&format!("/api/v1/retention?{range}&period=day"));
    let first_day_users = users.values().filter(|e| e[0].0 < day0 + DAY).count() as u64;
    assert_eq!(
        r["cohorts"][0]["users"].as_u64(),
        Some(first_day_users),
        "{r}"
    );
    let back_on_day3 = users
        .values()
        .filter(|e| {
            e[0].0 < day0 + DAY
                && e.iter()
                    .any(|(t, _)| (day0 + 3 * DAY..day0 + 4 * DAY).contains(t))
        })
        .count() as u64;
    assert_eq!(
        r["cohorts"][0]["active"][3].as_u64(),
        Some(back_on_day3),
        "{r}"
    );

    let j = get(&format!(
        "/api/v1/journeys?{range}&feature_of_interest=search"
    ));
    let transitions = j["transitions"].as_array().unwrap();
    assert!(!transitions.is_empty() && j["next"].is_array(), "{j}");
    let seg = get(&format!("/api/v1/segments?{range}"));
    let exporters = users
        .values()
        .filter(|e| e.len() >= 5 && e.iter().any(|(_, f)| *f == "export"))
        .count() as u64;
    assert_eq!(seg["rules"][0]["name"], "Exporters", "{seg}");
    assert_eq!(seg["rules"][0]["users"].as_u64(), Some(exporters), "{seg}");
    let i = get(&format!("/api/v1/interactions?{range}"));
    let features: Vec<&str> = i["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let users_of = |f: &str| {
        users
            .values()
            .filter(|e| e.iter().any(|(_, g)| *g == f))
            .count() as u64
    };
    let both = |f: &str, g: &str| {
        users
            .values()
            .filter(|e| e.iter().any(|(_, x)| *x == f) && e.iter().any(|(_, x)| *x == g))
            .count() as u64
    };
    assert_eq!(
        i["co_usage"][0][0].as_u64(),
        Some(users_of(features[0])),
        "{i}"
    );
    assert_eq!(
        i["co_usage"][0][1].as_u64(),
        Some(both(features[0], features[1])),
        "{i}"
    );
    let b = get(&format!("/api/v1/stats/behavioral?{range}"));
    assert_eq!(
        b["sessions"], s,
        "the summary's sessions are the sessions endpoint's"
    );

    let (from, to) = (day0.to_string(), (day0 + 4 * DAY).to_string());
    let out = tda(
        &c.url,
        &[
            "behavior",
            "funnel",
            "--steps",
            "login,search,export",
            "--window",
            "1h",
            "--since",
            &from,
            "--until",
            &to,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let export_row = text
        .lines()
        .find(|l| l.starts_with("export"))
        .unwrap_or_default()
        .to_string();
    assert!(
        out.status.success() && export_row.split_whitespace().nth(1) == Some(&want[2].to_string()),
        "{text}"
    );

    let (status, bad) = get_json(&format!("{}/api/v1/funnels?{range}&steps=login", c.url));
    assert_eq!(status, 400);
    assert!(
        bad["error"].as_str().unwrap().starts_with("steps:"),
        "{bad}"
    );
}

/// Adjusted Rand index of two labelings of the same items.
fn adjusted_rand(a: &[usize], b: &[usize]) -> f64 {
    let mut table: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    let (mut rows, mut cols): (BTreeMap<usize, f64>, BTreeMap<usize, f64>) = Default::default();
    for (x, y) in a.iter().zip(b) {
        *table.entry((*x, *y)).or_default() += 1.0;
        *rows.entry(*x).or_default() += 1.0;
        *cols.entry(*y).or_default() += 1.0;
    }
    let pairs = |n: f64| n * (n - 1.0) / 2.0;
    let index: f64 = table.values().map(|n| pairs(*n)).sum();
    let (sa, sb): (f64, f64) = (
        rows.values().map(|n| pairs(*n)).sum(),
        cols.values().map(|n| pairs(*n)).sum(),
    );
    let expected = sa * sb / pairs(a.len() as f64);
    (index - expected) / ((sa + sb) / 2.0 - expected)
}

#[test]
fn clustering_recovers_the_simulated_personas() {
    let tmp = tempfile::tempdir().unwrap();
    let c = CollectorSetup::new(&tmp.path().join("collector"), "").start();
    let agent = start_agent_with(
        &tmp.path().join("agent"),
        &c.url,
        c.pid(),
        "max_events = 5000\nmax_age_ms = 500",
    );
    let truth_file = tmp.path().join("truth.json");
    let start = (now_ms() / DAY - 8) * DAY;
    let start_text = start.to_string();
    let args = [
        "--users",
        "10000",
        "--duration",
        "7d",
        "--seed",
        "5",
        "--start",
        &start_text,
    ];
    let truth = simulate(&agent, &args, &truth_file);
    wait_all_sent(&agent, &truth);
    let persona_of: BTreeMap<String, usize> = truth["personas"]
        .as_object()
        .unwrap()
        .values()
        .enumerate()
        .flat_map(|(i, p)| {
            p["users"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |u| (u.as_str().unwrap().to_string(), i))
        })
        .collect();
    let (status, v) = get_json(&format!(
        "{}/api/v1/segments?from={start}&to={}&users=true",
        c.url,
        start + 7 * DAY
    ));
    assert_eq!(status, 200, "{v}");
    let assignment = v["assignment"].as_object().unwrap();
    assert_eq!(
        assignment.len(),
        persona_of.len(),
        "every simulated user is clustered"
    );
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for (user, cluster) in assignment {
        ours.push(cluster.as_u64().unwrap() as usize);
        theirs.push(persona_of[user]);
    }
    let ari = adjusted_rand(&ours, &theirs);
    let clusters = &v["segmentation"]["clusters"];
    eprintln!(
        "adjusted Rand index {ari:.3} over {} users; clusters: {clusters}",
        ours.len()
    );
    assert!(
        ari >= 0.8,
        "adjusted Rand index {ari:.3} (goal 0.8) over {} users; clusters: {clusters}",
        ours.len()
    );
}

#[test]
fn scheduled_analyses_run_when_a_profile_arrives_and_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(tmp.path(), "");
    let mut c = setup.start();
    let (users, _) = generate();
    post_all(&c, &users);
    let (status, _) = get_json(&format!(
        "{}/api/v1/stats/behavioral?profile=scheduled",
        c.url
    ));
    assert_eq!(status, 400, "no such profile yet");
    setup.profile(
        "scheduled.toml",
        "name = \"Scheduled\"\ntype = \"behavioral\"\n[models]\nevery = \"1h\"\nlookback = \"6d\"\n\n[[funnel]]\nname = \"Export\"\nsteps = [\"login\", \"search\", \"export\"]\nwindow = \"1h\"\n\n[[segment]]\nname = \"Exporters\"\nrule = \"uses(export)\"\n",
    );
    let url = format!("{}/api/v1/stats/behavioral", c.url);
    let run = wait_for("the scheduled run", || {
        let (status, v) = get_json(&url);
        (status == 200 && v["computed_at"].is_i64()).then_some(v)
    });
    let funnel = &run["funnels"][0];
    assert_eq!(funnel["name"], "Export");
    let per_step: Vec<u64> = funnel["funnel"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["users"].as_u64().unwrap())
        .collect();
    assert_eq!(
        per_step,
        brute_force_funnel(&users, &["login", "search", "export"], 60 * MIN)
    );
    let exporters = users
        .values()
        .filter(|e| e.iter().any(|(_, f)| *f == "export"))
        .count() as u64;
    assert_eq!(
        run["segments"]["rules"][0]["users"].as_u64(),
        Some(exporters)
    );
    assert_eq!(
        run["sessions"]["sessions"].as_u64(),
        Some(brute_force_sessions(&users, 30 * MIN))
    );
    assert_eq!(
        run["to"].as_i64().unwrap() - run["from"].as_i64().unwrap(),
        6 * DAY,
        "models.lookback"
    );

    c.terminate();
    let c2 = setup.on_new_port().start();
    let (status, again) = get_json(&format!("{}/api/v1/stats/behavioral", c2.url));
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        again["computed_at"], run["computed_at"],
        "the last run survives a restart and is not redone before models.every"
    );
}

#[test]
fn a_scheduled_run_made_before_the_data_came_is_redone_when_it_arrives() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(tmp.path(), "");
    let c = setup.start();
    setup.profile(
        "scheduled.toml",
        "name = \"Scheduled\"\ntype = \"behavioral\"\n[models]\nevery = \"1d\"\nlookback = \"6d\"\n\n[[funnel]]\nname = \"Export\"\nsteps = [\"login\", \"search\", \"export\"]\nwindow = \"1h\"\n",
    );
    let url = format!("{}/api/v1/stats/behavioral", c.url);
    let empty = wait_for("the first run, on no data", || {
        let (status, v) = get_json(&url);
        (status == 200 && v["computed_at"].is_i64()).then_some(v)
    });
    assert_eq!(empty["sessions"]["sessions"].as_u64(), Some(0), "{empty}");

    // A backlog arrives (a fresh install's agents, a backfill): more than the 1,000 events
    // that make a rerun worth it, long before `models.every`.
    let (users, _) = generate_users(400);
    let events: usize = users.values().map(Vec::len).sum();
    assert!(events > 1_000, "{events} events");
    post_all(&c, &users);
    let sessions = brute_force_sessions(&users, 30 * MIN);
    let run = wait_for("the run redone over the data", || {
        let (_, v) = get_json(&url);
        (v["sessions"]["sessions"].as_u64() == Some(sessions)).then_some(v)
    });
    let per_step: Vec<u64> = run["funnels"][0]["funnel"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["users"].as_u64().unwrap())
        .collect();
    let expected = brute_force_funnel(&users, &["login", "search", "export"], 60 * MIN);
    assert_eq!(per_step, expected);

    // The CLI shows the same as a table, not JSON.
    let out = tda(&c.url, &["stats", "behavioral"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("  sessions        {sessions} by ")),
        "{text}"
    );
    assert!(
        text.contains("  FUNNEL Export (ordered, within 60 min)"),
        "{text}"
    );
    for (step, users) in ["login", "search", "export"].iter().zip(&expected) {
        assert!(
            text.contains(&format!("  {step:<24} {users:>8} ")),
            "{step}: {text}"
        );
    }
}

#[test]
fn the_top_paths_are_the_planted_journeys() {
    let tmp = tempfile::tempdir().unwrap();
    let c = CollectorSetup::new(&tmp.path().join("collector"), "").start();
    let agent = start_agent(&tmp.path().join("agent"), &c.url, c.pid());
    let truth_file = tmp.path().join("truth.json");
    let start = (now_ms() / DAY - 4) * DAY;
    let start_text = start.to_string();
    let args = [
        "--users",
        "400",
        "--duration",
        "2d",
        "--seed",
        "9",
        "--start",
        &start_text,
    ];
    let truth = simulate(&agent, &args, &truth_file);
    wait_all_sent(&agent, &truth);
    // Planted journeys as the collector reports paths: consecutive repeats collapsed.
    let planted: Vec<Vec<String>> = truth["journeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            let mut steps: Vec<String> = Vec::new();
            for s in j["steps"].as_array().unwrap() {
                let s = s.as_str().unwrap().to_string();
                if steps.last() != Some(&s) {
                    steps.push(s);
                }
            }
            steps
        })
        .collect();
    let (status, v) = get_json(&format!(
        "{}/api/v1/journeys?from={start}&to={}&length=10",
        c.url,
        start + 2 * DAY
    ));
    assert_eq!(status, 200, "{v}");
    let top: Vec<Vec<String>> = v["top_paths"]
        .as_array()
        .unwrap()
        .iter()
        .take(3)
        .map(|p| {
            p["path"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        })
        .collect();
    for path in &top {
        assert!(
            planted.contains(path),
            "top path {path:?} is not a planted journey; planted: {planted:?}; top: {top:?}"
        );
    }
}
