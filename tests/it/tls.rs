//! TLS end to end with certificates made for the test: an agent ships to an `https://` collector
//! it verifies by a configured CA; a client or agent trusting another CA fails the handshake;
//! mutual TLS refuses clients without a certificate the agents' CA signed; a reload serves
//! replaced certificate files and keeps the old ones when the new ones are bad.

use std::fs;
use std::path::Path;

use tda_tests::pki::{Issued, Pki};
use tda_tests::*;

fn tls_table(server: &Issued, client_ca: Option<&Path>) -> String {
    let mut t = format!(
        "[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
        server.cert, server.key
    );
    if let Some(ca) = client_ca {
        t.push_str(&format!("client_ca_file = {ca:?}\n"));
    }
    t
}

fn send_event(agent: &Daemon, user: &str) {
    let (status, _) = post(
        &format!("{}/v1/events", agent.url),
        &[("content-type", "application/json")],
        serde_json::to_vec(
            &serde_json::json!([{"timestamp": now_ms(), "user_id": user, "feature": "generate"}]),
        )
        .unwrap(),
    );
    assert_eq!(status, 202, "the agent takes the event");
}

fn events_stored(client: &reqwest::blocking::Client, collector: &Daemon) -> u64 {
    let url = format!(
        "{}/api/v1/stats/usage?from={}&to={}",
        collector.url,
        now_ms() - 3_600_000,
        now_ms() + 60_000
    );
    let body: serde_json::Value = client.get(url).send().unwrap().json().unwrap();
    body["total_requests"].as_u64().unwrap()
}

/// The causes of a failed request, for matching the TLS alert or verification error.
fn failure(result: reqwest::Result<reqwest::blocking::Response>) -> String {
    match result {
        Ok(r) => panic!("expected a failed handshake, got {}", r.status()),
        Err(e) => tda_daemon::tls::with_causes(&e),
    }
}

#[test]
fn agents_ship_over_tls_and_an_untrusted_ca_fails_the_handshake() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = Pki::new(tmp.path(), "ours");
    let rogue = Pki::new(tmp.path(), "rogue");
    let server = ours.issue("collector", "collector");
    let setup = CollectorSetup::new(&tmp.path().join("c"), &tls_table(&server, None));
    let client = ours.client(None);
    let collector = setup.start_tls(&client);
    assert!(collector.url.starts_with("https://"));

    let agent = AgentSetup {
        collector: format!("ca_file = {:?}", ours.ca_file()),
        ..AgentSetup::new(&tmp.path().join("a"), &collector.url, collector.pid())
    }
    .start();
    send_event(&agent, "u1");
    wait_for("the batch acknowledged over TLS", || {
        (agent_counters(&agent.url)["events_sent"].as_u64() == Some(1)).then_some(())
    });
    assert_eq!(events_stored(&client, &collector), 1);

    let health = format!("{}/healthz", collector.url);
    let error = failure(rogue.client(None).get(&health).send());
    assert!(error.contains("UnknownIssuer"), "{error}");
    let plain = format!("http://127.0.0.1:{}/healthz", setup.port);
    assert!(
        http().get(plain).send().is_err(),
        "plain HTTP is not served"
    );

    // An agent that trusts another CA keeps its batch spooled and says why.
    let misled = AgentSetup {
        id: "misled".into(),
        collector: format!("ca_file = {:?}", rogue.ca_file()),
        ..AgentSetup::new(&tmp.path().join("m"), &collector.url, collector.pid())
    }
    .start();
    send_event(&misled, "u2");
    wait_for("the misled agent logs the verification failure", || {
        misled.log_text().contains("UnknownIssuer").then_some(())
    });
    assert_eq!(agent_counters(&misled.url)["events_sent"].as_u64(), Some(0));
    assert_eq!(
        events_stored(&client, &collector),
        1,
        "nothing of it stored"
    );
    assert!(client.get(&health).send().unwrap().status().is_success());
}

#[test]
fn mutual_tls_refuses_clients_without_a_certificate_the_agents_ca_signed() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = Pki::new(tmp.path(), "ours");
    let agents = Pki::new(tmp.path(), "agents");
    let rogue = Pki::new(tmp.path(), "rogue");
    let server = ours.issue("collector", "collector");
    let member = agents.issue("agent-1", "agent-1");
    let stranger = rogue.issue("stranger", "stranger");
    let table = tls_table(&server, Some(&agents.ca_file()));
    let setup = CollectorSetup::new(&tmp.path().join("c"), &table);
    let client = ours.client(Some(&member));
    let collector = setup.start_tls(&client);
    let health = format!("{}/healthz", collector.url);

    let error = failure(ours.client(None).get(&health).send());
    assert!(
        error.contains("received fatal alert: CertificateRequired"),
        "no client certificate: {error}"
    );
    let error = failure(ours.client(Some(&stranger)).get(&health).send());
    assert!(
        error.contains("received fatal alert: UnknownCA"),
        "a certificate of another CA: {error}"
    );
    assert!(client.get(&health).send().unwrap().status().is_success());

    let agent = AgentSetup {
        collector: format!(
            "ca_file = {:?}\nclient_cert_file = {:?}\nclient_key_file = {:?}",
            ours.ca_file(),
            member.cert,
            member.key
        ),
        ..AgentSetup::new(&tmp.path().join("a"), &collector.url, collector.pid())
    }
    .start();
    send_event(&agent, "u1");
    wait_for("the agent's batch acknowledged over mutual TLS", || {
        (agent_counters(&agent.url)["events_sent"].as_u64() == Some(1)).then_some(())
    });
    assert_eq!(events_stored(&client, &collector), 1);
}

fn served_certificate(pki: &Pki, url: &str) -> Vec<u8> {
    // A new client for each look: a pooled connection would keep the old handshake.
    let resp = pki.client(None).get(url).send().unwrap();
    let info = resp.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
    info.peer_certificate().unwrap().to_vec()
}

fn reload(pki: &Pki, collector: &Daemon) -> serde_json::Value {
    let resp = pki
        .client(None)
        .post(format!("{}/-/reload", collector.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().unwrap()
}

#[test]
fn a_reload_serves_replaced_certificate_files_and_keeps_them_when_bad() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = Pki::new(tmp.path(), "ours");
    let first = ours.issue("collector", "first");
    let setup = CollectorSetup::new(&tmp.path().join("c"), &tls_table(&first, None));
    let collector = setup.start_tls(&ours.client(None));
    let health = format!("{}/healthz", collector.url);
    assert_eq!(served_certificate(&ours, &health), first.der);

    let second = ours.issue("collector", "second");
    assert_ne!(second.der, first.der);
    let reloaded = reload(&ours, &collector);
    assert!(reloaded["config"]["last_error"].is_null(), "{reloaded}");
    assert_eq!(served_certificate(&ours, &health), second.der);

    fs::write(&second.key, "not a key\n").unwrap();
    let reloaded = reload(&ours, &collector);
    let error = reloaded["config"]["last_error"].as_str().unwrap();
    assert!(
        error.contains("collector-key.pem") && error.contains("private key"),
        "{error}"
    );
    assert_eq!(
        served_certificate(&ours, &health),
        second.der,
        "the certificate in force stays"
    );
}
