//! Alerts end to end: a real collector evaluates rules over events posted as they happen and
//! notifies a real HTTP receiver (and a real Alertmanager): `for`, hysteresis and noise, the
//! outbox across a receiver outage and a collector kill, reloads, silences and signatures.

use std::time::{Duration, Instant};

use serde_json::json;
use tda_tests::alerting::*;
use tda_tests::receiver::{Received, Receiver};
use tda_tests::*;

/// The statuses of the notifications received, in order.
fn statuses(got: &[Received]) -> Vec<String> {
    got.iter()
        .map(|r| r.json()["status"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[test]
fn a_threshold_alert_fires_after_for_holds_on_noise_and_resolves_past_recovery() {
    let receiver = Receiver::start();
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(tmp.path(), &alerting(&receiver.url("/hook"), ""));
    setup.profile("latency.toml", RULE);
    let c = setup.start();
    let feeder = Feeder::start(&c.url, 20.0);
    wait_for("a healthy value evaluated", || {
        let a = alert_state(&c.url);
        (a["state"] == "inactive" && a["value"].as_f64().is_some_and(|v| v < 50.0)).then_some(())
    });

    feeder.set(150.0);
    let pending = wait_state(&c.url, "pending");
    let firing = wait_state(&c.url, "firing");
    let (since, fired) = (
        pending["active_since"].as_i64().unwrap(),
        firing["fired_at"].as_i64().unwrap(),
    );
    assert!(
        fired - since >= 1_000,
        "fired {} ms after the condition began; `for` is 1 s",
        fired - since
    );
    let got = receiver.wait_for(1);
    let n = got[0].json();
    assert_eq!(n["version"], "4");
    assert_eq!(n["status"], "firing");
    assert_eq!(n["receiver"], "ops");
    assert_eq!(
        n["groupLabels"],
        json!({"alertname": "SlowGenerate", "profile": "latency"})
    );
    assert_eq!(n["commonLabels"]["severity"], "page");
    assert_eq!(n["externalURL"], "http://tda.test:7300");
    let alert = &n["alerts"][0];
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("generate takes 1"),
        "{alert}"
    );
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .unwrap()
            .ends_with("ms (over 100)"),
        "{alert}"
    );
    assert_eq!(alert["fingerprint"].as_str().unwrap().len(), 16);
    assert!(got[0].headers.contains_key("x-tda-dedup-key"));

    // Noise between the recovery value and far above the threshold: it keeps firing, and the
    // receiver hears nothing new.
    let noise_until = Instant::now() + Duration::from_secs(3);
    let mut i = 0;
    while Instant::now() < noise_until {
        feeder.set(if i % 2 == 0 { 60.0 } else { 130.0 });
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(
            alert_state(&c.url)["state"],
            "firing",
            "flapped during noise"
        );
        i += 1;
    }
    assert_eq!(
        receiver.received().len(),
        1,
        "no notification during the noise"
    );

    feeder.set(10.0);
    let resolved = wait_state(&c.url, "resolved");
    assert!(resolved["resolved_at"].as_i64().unwrap() > fired);
    let got = receiver.wait_for(2);
    assert_eq!(statuses(&got), vec!["firing", "resolved"]);
    let r = &got[1].json()["alerts"][0];
    assert_eq!(r["status"], "resolved");
    assert_ne!(r["endsAt"], "0001-01-01T00:00:00Z");
    assert_ne!(
        got[0].headers["x-tda-dedup-key"],
        got[1].headers["x-tda-dedup-key"]
    );
}

#[test]
fn the_outbox_outlives_a_receiver_outage_and_a_collector_kill_and_reloads_do_not_resend() {
    let mut receiver = Receiver::stopped(free_port());
    let tmp = tempfile::tempdir().unwrap();
    let secret = tmp.path().join("hook-secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let extra = format!("hmac_secret_file = \"{}\"\n", secret.display());
    let setup = CollectorSetup::new(tmp.path(), &alerting(&receiver.url("/hook"), &extra));
    setup.profile("latency.toml", RULE);
    let mut c = setup.start();
    let feeder = Feeder::start(&c.url, 150.0);
    wait_state(&c.url, "firing");
    wait_for("the notification queued and failing", || {
        let (_, v) = get_json(&format!("{}/api/v1/alerts", c.url));
        (v["outbox"] == 1 && v["notifications"]["retried"].as_u64() >= Some(1)).then_some(())
    });
    drop(feeder);
    c.kill();

    receiver.resume();
    let c = setup.on_new_port().start();
    let got = receiver.wait_for(1);
    assert_eq!(got[0].json()["status"], "firing");
    let expected = {
        use hmac::Mac;
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
        m.update(got[0].body.as_bytes());
        let hex: String = m
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("sha256={hex}")
    };
    assert_eq!(got[0].headers["x-tda-signature"], expected);

    // A reload (the same profile written again, and an explicit reload) sends nothing new.
    setup.profile("latency.toml", RULE);
    let (status, _) = post(
        &format!("{}/-/reload", c.url),
        &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        Vec::new(),
    );
    assert_eq!(status, 200);
    let after = after_passes(&c.url, 10);
    assert_eq!(after["outbox"], 0, "nothing queued");
    assert_eq!(
        receiver.received().len(),
        1,
        "one notification per group per repeat_interval"
    );
    assert_eq!(
        alert_state(&c.url)["state"],
        "firing",
        "state kept across the restart"
    );
}

#[test]
fn a_silenced_alert_is_not_notified() {
    let receiver = Receiver::start();
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(tmp.path(), &alerting(&receiver.url("/hook"), ""));
    setup.profile("latency.toml", RULE);
    let c = setup.start();
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let (status, v) = post(
        &format!("{}/api/v1/silences", c.url),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        json!({"matchers": ["alertname=SlowGenerate"], "duration": "1h", "comment": "deploy"})
            .to_string()
            .into_bytes(),
    );
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let (status, _) = post(
        &format!("{}/api/v1/silences", c.url),
        &[("content-type", "application/json")],
        b"{}".to_vec(),
    );
    assert_eq!(status, 401, "silences need the admin token");
    let feeder = Feeder::start(&c.url, 150.0);
    let firing = wait_state(&c.url, "firing");
    assert_eq!(firing["silenced_by"], id);
    let after = after_passes(&c.url, 5);
    assert_eq!(after["outbox"], 0, "nothing queued");
    assert!(receiver.received().is_empty(), "silenced");
    let listed = tda(&c.url, &["alerts"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.contains(&format!("firing (silenced {id})")), "{text}");
    let refused = std::process::Command::new(bin("tda"))
        .env_remove("TDA_ADMIN_TOKEN")
        .args([
            "--server",
            &c.url,
            "silence",
            "add",
            "--matcher",
            "alertname=X",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success(), "needs the admin token");
    let added = tda(
        &c.url,
        &[
            "--token",
            ADMIN_TOKEN,
            "silence",
            "add",
            "--matcher",
            "severity=page",
            "--for",
            "5m",
        ],
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let listed = tda(&c.url, &["silence", "list"]);
    assert_eq!(String::from_utf8_lossy(&listed.stdout).lines().count(), 2);
    let second = String::from_utf8_lossy(&added.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let expired = tda(
        &c.url,
        &["--token", ADMIN_TOKEN, "silence", "expire", &second],
    );
    assert!(
        expired.status.success(),
        "{}",
        String::from_utf8_lossy(&expired.stderr)
    );
    let expired = http()
        .delete(format!("{}/api/v1/silences/{id}", c.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap();
    assert_eq!(expired.status().as_u16(), 200);
    let got = receiver.wait_for(1);
    assert_eq!(
        got[0].json()["status"],
        "firing",
        "notified once the silence expired"
    );
    drop(feeder);
}

#[test]
fn alertmanager_receives_and_lists_the_alert() {
    let binary = std::path::Path::new("/usr/bin/prometheus-alertmanager");
    assert!(
        binary.exists(),
        "prometheus-alertmanager is missing: apt-get install prometheus-alertmanager (.ci/run does)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let am_port = free_port();
    std::fs::write(
        tmp.path().join("am.yml"),
        "route:\n  receiver: none\nreceivers:\n  - name: none\n",
    )
    .unwrap();
    let mut am = std::process::Command::new(binary)
        .arg(format!(
            "--config.file={}",
            tmp.path().join("am.yml").display()
        ))
        .arg(format!(
            "--storage.path={}",
            tmp.path().join("am-data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
        .arg("--cluster.listen-address=")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(tmp.path().join("am.log")).unwrap())
        .spawn()
        .expect("start alertmanager");
    let am_url = format!("http://127.0.0.1:{am_port}");
    wait_for("alertmanager ready", || {
        http()
            .get(format!("{am_url}/-/ready"))
            .send()
            .ok()
            .filter(|r| r.status().is_success())
    });
    let config = format!(
        "[alerting]\nevaluation_interval = \"200ms\"\n\n[[alerting.receiver]]\nname = \"am\"\nkind = \"alertmanager\"\nurl = \"{am_url}\"\n\n[alerting.route]\nreceiver = \"am\"\ngroup_wait = \"0s\"\n"
    );
    let setup = CollectorSetup::new(&tmp.path().join("c"), &config);
    setup.profile("latency.toml", RULE);
    let c = setup.start();
    let feeder = Feeder::start(&c.url, 150.0);
    let listed = wait_for("the alert listed by alertmanager", || {
        let (status, v) = get_json(&format!("{am_url}/api/v2/alerts"));
        (status == 200 && v.as_array().is_some_and(|a| !a.is_empty())).then_some(v)
    });
    let a = &listed[0];
    assert_eq!(a["labels"]["alertname"], "SlowGenerate");
    assert_eq!(a["labels"]["severity"], "page");
    assert_eq!(a["status"]["state"], "active");
    assert!(a["annotations"]["summary"]
        .as_str()
        .unwrap()
        .starts_with("generate takes"));
    drop(feeder);
    drop(c);
    let _ = am.kill();
    let _ = am.wait();
}

#[test]
fn a_receiver_that_refuses_with_400_is_not_retried() {
    let receiver = Receiver::start();
    receiver.answer(400);
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(tmp.path(), &alerting(&receiver.url("/hook"), ""));
    setup.profile("latency.toml", RULE);
    let c = setup.start();
    let feeder = Feeder::start(&c.url, 150.0);
    wait_for("the refused notification dropped", || {
        let (_, v) = get_json(&format!("{}/api/v1/alerts", c.url));
        (v["notifications"]["dropped"] == 1 && v["outbox"] == 0).then_some(())
    });
    after_passes(&c.url, 5);
    assert_eq!(receiver.received().len(), 1, "a 400 is not retried");
    assert!(c.log_text().contains("notification refused; dropped"));
    drop(feeder);
}

#[test]
fn a_receiver_answering_503_is_retried_with_the_same_dedup_key() {
    let receiver = Receiver::start();
    receiver.answer(503);
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(tmp.path(), &alerting(&receiver.url("/hook"), ""));
    setup.profile("latency.toml", RULE);
    let c = setup.start();
    let feeder = Feeder::start(&c.url, 150.0);
    receiver.wait_for(2);
    receiver.answer(200);
    wait_for("the notification delivered", || {
        let (_, v) = get_json(&format!("{}/api/v1/alerts", c.url));
        (v["notifications"]["sent"] == 1 && v["outbox"] == 0).then_some(())
    });
    let got = receiver.received();
    let keys: std::collections::BTreeSet<&String> =
        got.iter().map(|r| &r.headers["x-tda-dedup-key"]).collect();
    assert!(got.len() >= 3, "two refusals and the delivery");
    assert_eq!(keys.len(), 1, "every attempt carries the same key");
    assert!(
        got.windows(2).all(|w| w[0].body == w[1].body),
        "the same body"
    );
    drop(feeder);
}
