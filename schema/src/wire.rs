//! The native event format, host samples and the batch an agent ships, with field-level validation.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::timestamp::Timestamp;

/// Version of the batch format; the collector rejects batches of another version.
pub const BATCH_FORMAT_VERSION: u16 = 1;
/// Longest accepted `user_id` and `session_id`, in bytes.
pub const MAX_ID_LEN: usize = 256;
/// Longest accepted `feature`, in bytes.
pub const MAX_FEATURE_LEN: usize = 128;
/// Longest accepted `route`, in bytes.
pub const MAX_ROUTE_LEN: usize = 1024;
/// Longest accepted `error`, in bytes.
pub const MAX_ERROR_LEN: usize = 1024;
/// Most keys accepted in an event's `properties`.
pub const MAX_PROPERTIES: usize = 64;
/// Deepest nesting of arrays and objects inside a property value. The agent and the collector
/// refuse deeper events alike (a JSON parser's recursion limit would otherwise refuse the
/// whole batch at the collector, which wraps events two levels deeper than the intake).
pub const MAX_PROPERTY_DEPTH: usize = 32;
/// Most bytes an event's properties take as JSON (about), so that a batch the agent closes at
/// its `batch.max_bytes` stays within the collector's body limits whatever its events carry.
pub const MAX_PROPERTIES_BYTES: usize = 1 << 20;

/// One usage event from TD Generator: a request a user made to a feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// When the request happened (RFC 3339 or epoch ms on input; epoch ms on output).
    pub timestamp: Timestamp,
    /// Who made the request: a stable user id, or an anonymous id.
    pub user_id: String,
    /// The client's session id, when it keeps one (the collector also builds its own sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The product feature used, for example `generate` or `export`.
    pub feature: String,
    /// The HTTP route served, for example `/api/v1/generate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// HTTP status code of the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Time to serve the request, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Error type or message when the request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Free-form properties (plan, client, region …).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub properties: Map<String, Value>,
}

impl Event {
    /// Whether the request failed: an `error` is set or the status is 5xx.
    pub fn is_error(&self) -> bool {
        self.error.is_some() || self.status.is_some_and(|s| s >= 500)
    }

    /// The error type used for error tracking: the `error` text, else `http_<status>` for 5xx.
    pub fn error_kind(&self) -> Option<String> {
        match (&self.error, self.status) {
            (Some(e), _) => Some(e.clone()),
            (None, Some(s)) if s >= 500 => Some(format!("http_{s}")),
            _ => None,
        }
    }

    /// Checks the rules serde cannot express; returns the offending field and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        check_text("user_id", &self.user_id, MAX_ID_LEN)?;
        check_text("feature", &self.feature, MAX_FEATURE_LEN)?;
        if let Some(s) = &self.session_id {
            check_text("session_id", s, MAX_ID_LEN)?;
        }
        if let Some(r) = &self.route {
            check_text("route", r, MAX_ROUTE_LEN)?;
        }
        if let Some(e) = &self.error {
            check_text("error", e, MAX_ERROR_LEN)?;
        }
        if let Some(s) = self.status {
            check_status(s)?;
        }
        if let Some(l) = self.latency_ms {
            check_latency(l)?;
        }
        check_properties(&self.properties)
    }

    /// About how many bytes the event takes as JSON (what a batch's size is counted in).
    pub fn approx_bytes(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, |s| s.len() + 16);
        96 + self.user_id.len()
            + self.feature.len()
            + opt(&self.session_id)
            + opt(&self.route)
            + opt(&self.error)
            + measure_properties(&self.properties).0
    }
}

/// About how many bytes `properties` take as JSON, and how deep their values nest (a flat value
/// is depth 0, a value inside an array or object one more than it).
pub fn measure_properties(
    properties: &serde_json::Map<String, serde_json::Value>,
) -> (usize, usize) {
    fn walk(v: &serde_json::Value, depth: usize) -> (usize, usize) {
        use serde_json::Value;
        match v {
            Value::Null | Value::Bool(_) => (5, depth),
            Value::Number(_) => (12, depth),
            Value::String(s) => (s.len() + 2, depth),
            Value::Array(items) => items.iter().fold((2, depth), |(b, d), x| {
                let (xb, xd) = walk(x, depth + 1);
                (b + xb + 1, d.max(xd))
            }),
            Value::Object(map) => map.iter().fold((2, depth), |(b, d), (k, x)| {
                let (xb, xd) = walk(x, depth + 1);
                (b + k.len() + 4 + xb, d.max(xd))
            }),
        }
    }
    properties.iter().fold((2, 0), |(b, d), (k, v)| {
        let (vb, vd) = walk(v, 0);
        (b + k.len() + 4 + vb, d.max(vd))
    })
}

/// An event's `status`: an HTTP status (100-599).
pub fn check_status(s: u16) -> Result<(), (&'static str, String)> {
    if !(100..=599).contains(&s) {
        return Err(("status", format!("{s} is not an HTTP status (100-599)")));
    }
    Ok(())
}

/// An event's `latency_ms`: a finite number >= 0.
pub fn check_latency(l: f64) -> Result<(), (&'static str, String)> {
    if !l.is_finite() || l < 0.0 {
        return Err(("latency_ms", format!("{l} must be a finite number >= 0")));
    }
    Ok(())
}

/// An event's `properties`: at most [`MAX_PROPERTIES`] keys, [`MAX_PROPERTY_DEPTH`] levels
/// and about [`MAX_PROPERTIES_BYTES`] bytes of JSON.
pub fn check_properties(properties: &Map<String, Value>) -> Result<(), (&'static str, String)> {
    if properties.len() > MAX_PROPERTIES {
        return Err((
            "properties",
            format!("{} keys, at most {MAX_PROPERTIES}", properties.len()),
        ));
    }
    let (bytes, depth) = measure_properties(properties);
    if depth > MAX_PROPERTY_DEPTH {
        return Err((
            "properties",
            format!("nested {depth} levels deep, at most {MAX_PROPERTY_DEPTH}"),
        ));
    }
    if bytes > MAX_PROPERTIES_BYTES {
        return Err((
            "properties",
            format!("about {bytes} bytes of JSON, at most {MAX_PROPERTIES_BYTES}"),
        ));
    }
    Ok(())
}

/// A required or optional text field: not blank, at most `max` bytes.
pub fn check_text(
    field: &'static str,
    value: &str,
    max: usize,
) -> Result<(), (&'static str, String)> {
    if value.trim().is_empty() {
        return Err((field, "must not be empty".into()));
    }
    if value.len() > max {
        return Err((field, format!("{} bytes, at most {max}", value.len())));
    }
    Ok(())
}

/// One sample of the host, and of the watched process when one is configured and running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSample {
    /// When the sample was taken.
    pub timestamp: Timestamp,
    /// CPU busy over all cores since the previous sample, percent (0-100).
    pub cpu_percent: f32,
    /// CPU busy per core since the previous sample, percent (0-100 each).
    pub cpu_per_core: Vec<f32>,
    /// Physical memory installed, bytes.
    pub mem_total_bytes: u64,
    /// Physical memory in use (total minus available), bytes.
    pub mem_used_bytes: u64,
    /// Swap configured, bytes.
    pub swap_total_bytes: u64,
    /// Swap in use, bytes.
    pub swap_used_bytes: u64,
    /// Load average over 1, 5 and 15 minutes.
    pub load: [f64; 3],
    /// Size of all local disks, bytes.
    pub disk_total_bytes: u64,
    /// Space available to unprivileged users on all local disks, bytes.
    pub disk_available_bytes: u64,
    /// Bytes read from local disks since the previous sample.
    pub disk_read_bytes: u64,
    /// Bytes written to local disks since the previous sample.
    pub disk_written_bytes: u64,
    /// Bytes received on all interfaces since the previous sample.
    pub net_rx_bytes: u64,
    /// Bytes sent on all interfaces since the previous sample.
    pub net_tx_bytes: u64,
    /// Packets received since the previous sample.
    pub net_rx_packets: u64,
    /// Packets sent since the previous sample.
    pub net_tx_packets: u64,
    /// Receive errors since the previous sample.
    pub net_rx_errors: u64,
    /// Transmit errors since the previous sample.
    pub net_tx_errors: u64,
    /// The watched TD Generator process, if configured and found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessSample>,
}

impl HostSample {
    /// Checks ranges: percentages within 0-100, used within total.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        check_percent("cpu_percent", self.cpu_percent)?;
        for &c in &self.cpu_per_core {
            check_percent("cpu_per_core", c)?;
        }
        if self.mem_used_bytes > self.mem_total_bytes {
            return Err(("mem_used_bytes", "exceeds mem_total_bytes".into()));
        }
        if self.load.iter().any(|l| !l.is_finite() || *l < 0.0) {
            return Err(("load", "must be finite numbers >= 0".into()));
        }
        if let Some(p) = &self.process {
            if !p.cpu_percent.is_finite() || p.cpu_percent < 0.0 {
                return Err(("process.cpu_percent", "must be a finite number >= 0".into()));
            }
        }
        Ok(())
    }
}

fn check_percent(field: &'static str, v: f32) -> Result<(), (&'static str, String)> {
    if v.is_finite() && (0.0..=100.0).contains(&v) {
        Ok(())
    } else {
        Err((field, format!("{v} is not a percentage (0-100)")))
    }
}

/// Resource use of the watched TD Generator process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSample {
    /// Process id.
    pub pid: u32,
    /// Process name as the kernel reports it.
    pub name: String,
    /// CPU used since the previous sample, percent of one core (may exceed 100 on several cores).
    pub cpu_percent: f32,
    /// Resident set size, bytes.
    pub rss_bytes: u64,
    /// Virtual memory size, bytes.
    pub virtual_bytes: u64,
    /// Number of threads.
    pub threads: u32,
    /// Number of open file descriptors.
    pub open_fds: u32,
    /// Seconds since the process started.
    pub uptime_secs: u64,
}

/// What an agent ships to the collector: events and samples, under an id that makes retries idempotent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// Batch format version, [`BATCH_FORMAT_VERSION`].
    pub version: u16,
    /// The agent that sent it (host name unless configured).
    pub agent_id: String,
    /// Unique per agent; a batch sent twice under one id is stored once.
    pub batch_id: String,
    /// When the agent closed the batch.
    pub created_at: Timestamp,
    /// Usage events.
    #[serde(default)]
    pub events: Vec<Event>,
    /// Host and process samples.
    #[serde(default)]
    pub samples: Vec<HostSample>,
}

/// A rejected input, naming where the problem is (`events[3].latency_ms`) and what it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct FieldError {
    /// Path to the offending value, for example `events[3].status`; `body` for the whole body.
    pub location: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A problem at `location`.
    pub fn at(location: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            location: location.into(),
            message: message.into(),
        }
    }
}

fn deserialize_json<T: serde::de::DeserializeOwned>(
    body: &[u8],
    prefix: &str,
) -> Result<T, FieldError> {
    // The fast path: plain serde_json; only a body that fails is decoded again with path
    // tracking, to name the field.
    if let Ok(value) = serde_json::from_slice::<T>(body) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let location = match (prefix, path.as_str()) {
            ("", ".") => "body".to_string(),
            (p, ".") => p.to_string(),
            (p, path) if path.starts_with('[') => format!("{p}{path}"),
            ("", path) => path.to_string(),
            (p, path) => format!("{p}.{path}"),
        };
        FieldError::at(location, e.into_inner().to_string())
    })?;
    de.end()
        .map_err(|e| FieldError::at("body", format!("trailing data: {e}")))?;
    Ok(value)
}

/// Decodes and validates a JSON array of events (the agent's `POST /v1/events` body).
pub fn decode_events(body: &[u8]) -> Result<Vec<Event>, FieldError> {
    let events: Vec<Event> = deserialize_json(body, "events")?;
    validate_events(&events, "events")?;
    Ok(events)
}

fn validate_events(events: &[Event], prefix: &str) -> Result<(), FieldError> {
    for (i, ev) in events.iter().enumerate() {
        ev.validate()
            .map_err(|(field, msg)| FieldError::at(format!("{prefix}[{i}].{field}"), msg))?;
    }
    Ok(())
}

/// Decodes and validates a batch (the collector's `POST /v1/batches` body, after decompression).
pub fn decode_batch(body: &[u8]) -> Result<Batch, FieldError> {
    let batch: Batch = deserialize_json(body, "")?;
    if batch.version != BATCH_FORMAT_VERSION {
        return Err(FieldError::at(
            "version",
            format!(
                "unsupported batch format {}, expected {BATCH_FORMAT_VERSION}",
                batch.version
            ),
        ));
    }
    check_text("agent_id", &batch.agent_id, MAX_ID_LEN).map_err(|(f, m)| FieldError::at(f, m))?;
    check_text("batch_id", &batch.batch_id, MAX_ID_LEN).map_err(|(f, m)| FieldError::at(f, m))?;
    validate_events(&batch.events, "events")?;
    for (i, s) in batch.samples.iter().enumerate() {
        s.validate()
            .map_err(|(field, msg)| FieldError::at(format!("samples[{i}].{field}"), msg))?;
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"[{"timestamp":"2026-11-28T10:00:00Z","user_id":"u1","feature":"generate",
        "route":"/api/generate","status":200,"latency_ms":12.5,"properties":{"plan":"pro"}},
        {"timestamp":1795860001000,"user_id":"u2","feature":"export","status":503,"error":"timeout"}]"#;

    #[test]
    fn deep_or_huge_properties_are_refused_alike_by_intake_and_batch() {
        let nested = |levels: usize| {
            let mut v = serde_json::json!(1);
            for _ in 0..levels {
                v = serde_json::json!([v]);
            }
            v
        };
        let event = |props: serde_json::Value| serde_json::json!([{"timestamp": 1_795_860_000_000i64, "user_id": "u", "feature": "f", "properties": {"p": props}}]);
        let ok = event(nested(MAX_PROPERTY_DEPTH));
        assert!(decode_events(ok.to_string().as_bytes()).is_ok());
        let deep = event(nested(MAX_PROPERTY_DEPTH + 1));
        let e = decode_events(deep.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.location, "events[0].properties");
        assert!(e.message.contains("nested 33 levels deep"), "{}", e.message);
        // The same event inside a batch: the same refusal, not the parser's recursion limit.
        let batch = serde_json::json!({"version": 1, "agent_id": "a", "batch_id": "b",
            "created_at": 1_795_860_000_000i64, "events": deep});
        let e = decode_batch(batch.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.location, "events[0].properties");
        let huge = event(serde_json::json!("x".repeat(MAX_PROPERTIES_BYTES)));
        let e = decode_events(huge.to_string().as_bytes()).unwrap_err();
        assert!(e.message.contains("bytes of JSON"), "{}", e.message);
        let events = decode_events(
            event(serde_json::json!("x".repeat(1000)))
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert!((1_000..1_300).contains(&events[0].approx_bytes()));
    }

    #[test]
    fn decodes_valid_events() {
        let events = decode_events(GOOD.as_bytes()).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].timestamp.0, 1_795_860_000_000);
        assert_eq!(events[0].latency_ms, Some(12.5));
        assert!(!events[0].is_error());
        assert_eq!(events[1].error_kind().as_deref(), Some("timeout"));
    }

    fn err(body: &str) -> FieldError {
        decode_events(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn names_the_event_index_and_field() {
        let e = err(r#"[{"timestamp":1795860000000,"user_id":"u","feature":"f"},
                        {"timestamp":1795860000000,"user_id":"u","feature":"f","latency_ms":"fast"}]"#);
        assert_eq!(e.location, "events[1].latency_ms");
        let e = err(r#"[{"timestamp":1795860000000,"feature":"f"}]"#);
        assert_eq!(e.location, "events[0]");
        assert!(e.message.contains("missing field `user_id`"), "{e}");
        let e = err(r#"[{"timestamp":1795860000000,"user_id":"u","feature":"f","colour":1}]"#);
        assert!(e.message.contains("unknown field `colour`"), "{e}");
        let e = err(r#"[{"timestamp":1795860000000,"user_id":"u","feature":"f","status":700}]"#);
        assert_eq!(e.location, "events[0].status");
        let e = err(r#"[{"timestamp":1795860000000,"user_id":" ","feature":"f"}]"#);
        assert_eq!(e.to_string(), "events[0].user_id: must not be empty");
        let e = err(r#"[{"timestamp":"last tuesday","user_id":"u","feature":"f"}]"#);
        assert_eq!(e.location, "events[0].timestamp");
    }

    #[test]
    fn rejects_non_arrays_and_broken_json() {
        assert_eq!(err(r#"{"a":1}"#).location, "events");
        assert!(err("[{").message.contains("EOF"));
    }

    #[test]
    fn batch_round_trips_and_checks_version() {
        let batch = Batch {
            version: BATCH_FORMAT_VERSION,
            agent_id: "web-1".into(),
            batch_id: "web-1-1".into(),
            created_at: Timestamp(1_795_860_000_000),
            events: decode_events(GOOD.as_bytes()).unwrap(),
            samples: vec![],
        };
        let json = serde_json::to_vec(&batch).unwrap();
        assert_eq!(decode_batch(&json).unwrap(), batch);
        let mut v: Value = serde_json::from_slice(&json).unwrap();
        v["version"] = 9.into();
        let e = decode_batch(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert_eq!(e.location, "version");
        v["version"] = 1.into();
        v["events"][1]["latency_ms"] = (-1.0).into();
        let e = decode_batch(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert_eq!(e.location, "events[1].latency_ms");
    }
}
