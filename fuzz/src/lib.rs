//! The agent decoder targets' calls and what they assert, shared by the fuzz targets and the
//! corpus replay in the ordinary test run (`tests/it/fuzz_corpus.rs` includes this file).

use tda_agent::sdk::{decode, segment, Payload, Received, Sdk, SdkError};
use tda_schema::config::{IntakeConfig, RequestLogConfig};
use tda_schema::Event;

/// A fixed agent clock (2026-12-01T00:00:00Z), so a run is repeatable.
pub const NOW: i64 = 1_796_083_200_000;

/// Decodes `body` as a PostHog capture request, plain, as gzip and as base64; returns the
/// events made.
pub fn posthog(body: &[u8]) -> usize {
    let cfg = IntakeConfig::default();
    let mut made = 0;
    for (gzip, base64) in [(false, false), (true, false), (false, true)] {
        let got = Received {
            body,
            gzip,
            base64,
            authorization: None,
            query_key: None,
        };
        made += payload_or_reason(decode(Sdk::PostHog, &got, &cfg, NOW));
    }
    made
}

/// Decodes `body` as a request on every Segment route, plain and as gzip, with `body` also as
/// the `Authorization` header; returns the events made.
pub fn segment(body: &[u8]) -> usize {
    let cfg = IntakeConfig::default();
    let header = String::from_utf8_lossy(body);
    let mut made = 0;
    for kind in segment::KINDS {
        for gzip in [false, true] {
            let got = Received {
                body,
                gzip,
                base64: false,
                authorization: Some(&header),
                query_key: None,
            };
            made += payload_or_reason(decode(Sdk::Segment(kind), &got, &cfg, NOW));
        }
    }
    made
}

/// Decodes `line` as a request-log line (default field names); returns the events made.
pub fn log_line(line: &[u8]) -> usize {
    let cfg: RequestLogConfig =
        serde_json::from_str(r#"{"path": "requests.log"}"#).expect("a minimal config");
    match tda_agent::tail::line_event(&cfg, line) {
        Ok(Some(event)) => collector_takes(&[event]),
        Ok(None) => 0,
        Err(e) => {
            assert!(!e.is_empty(), "a refusal without a reason");
            0
        }
    }
}

/// A decoded request's events are taken by the collector; a refusal says why.
fn payload_or_reason(r: Result<Payload, SdkError>) -> usize {
    match r {
        Ok(p) => {
            let events: Vec<Event> = p.events.into_iter().map(|i| i.event).collect();
            collector_takes(&events)
        }
        Err(e) => {
            assert!(!e.to_string().is_empty(), "a refusal without a reason");
            0
        }
    }
}

/// Events the agent made from any input are taken by the collector's decoder.
fn collector_takes(events: &[Event]) -> usize {
    let wire = serde_json::to_vec(events).expect("events serialise");
    match tda_schema::wire::decode_events(&wire) {
        Ok(back) => back.len(),
        Err(e) => panic!("the collector refuses what the agent made: {e}"),
    }
}
