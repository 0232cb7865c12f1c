//! Retention against a real collector: data older than the longest `retention_period` of the
//! profiles in force is deleted on schedule; newer data stays.

use std::fs;

use tda_tests::*;

#[test]
fn retention_deletes_data_older_than_the_longest_retention_period() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(tmp.path(), "[retention]\nevery = \"300ms\"\n");
    setup.profile(
        "usage.toml",
        "name = \"U\"\ntype = \"usage\"\n[settings]\nretention_period = 2\n",
    );
    setup.profile(
        "perf.toml",
        "name = \"P\"\ntype = \"performance\"\n[settings]\nretention_period = 1\n",
    );
    let c = setup.start();
    let now = now_ms();
    let (old, recent) = (now - 3 * 86_400_000, now - 3_600_000);
    let body = format!(
        "{{\"version\":1,\"agent_id\":\"a\",\"batch_id\":\"r1\",\"created_at\":{now},\"events\":[{{\"timestamp\":{old},\"user_id\":\"u\",\"feature\":\"f\"}},{{\"timestamp\":{recent},\"user_id\":\"u\",\"feature\":\"f\"}}]}}"
    );
    let (status, _) = post(
        &format!("{}/v1/batches", c.url),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        body.into_bytes(),
    );
    assert_eq!(status, 200);
    wait_for(
        "the 3-day-old event deleted (2 days is the longest retention)",
        || (usage(&c.url, old, old + 1)["total_requests"] == 0).then_some(()),
    );
    assert_eq!(usage(&c.url, recent, recent + 1)["total_requests"], 1);
    let log = fs::read_to_string(setup.dir.join("collector.log")).unwrap();
    assert!(log.contains("retention deleted old data"), "{log}");
}
