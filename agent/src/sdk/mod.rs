//! SDK-compatible intakes (PostHog, Segment): their payloads become usage events, with key
//! checks, gzip bodies, clock-skew correction, id dedupe and anonymous-to-user id mapping.

pub mod fields;
mod http;
pub mod posthog;
pub mod recent;
pub mod segment;

use std::io::Read;

use serde_json::{Map, Value};
use tda_schema::config::IntakeConfig;
use tda_schema::timestamp::now_ms;
use tda_schema::{Event, Timestamp};

pub use recent::{Identities, Recent};

/// Why an SDK request was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SdkError {
    /// The body or one of its events is malformed (400); the text names where.
    #[error("{0}")]
    Invalid(String),
    /// No accepted key was presented (401).
    #[error("{0}")]
    Unauthorized(String),
    /// A message or the body is over the intake's size limit (413).
    #[error("{0}")]
    TooLarge(String),
}

/// An event the SDK sent, with the id it may be deduplicated by.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// The SDK's event id (`uuid`, `messageId`), when it sent one.
    pub id: Option<String>,
    /// The usage event.
    pub event: Event,
}

/// What one request carried: usage events, and identity links (`anonymous id -> user id`).
#[derive(Debug, Default, PartialEq)]
pub struct Payload {
    /// Usage events, in the order sent.
    pub events: Vec<Incoming>,
    /// Ids to map: events of the first are counted under the second.
    pub links: Vec<(String, String)>,
    /// The project key the request presented, if any.
    pub key: Option<String>,
}

/// Which SDK's API a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sdk {
    /// One of PostHog's capture routes.
    PostHog,
    /// Segment's `/v1/<kind>` (`track` … or `batch`).
    Segment(&'static str),
}

impl Sdk {
    /// `posthog` or `segment`: the kind its refusals are logged under.
    pub fn name(self) -> &'static str {
        match self {
            Sdk::PostHog => "posthog",
            Sdk::Segment(_) => "segment",
        }
    }
}

/// What the HTTP layer read off an SDK request, before the body is decoded.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// The body as sent (at most `intake.max_body_bytes`).
    pub body: &'a [u8],
    /// Whether the body is said to be gzip (`Content-Encoding: gzip` or `?compression=gzip…`);
    /// a body starting with gzip's magic bytes is gunzipped without it.
    pub gzip: bool,
    /// Whether the body is said to be base64 (`?compression=base64`, posthog-js's unload beacon).
    pub base64: bool,
    /// The `Authorization` header, if sent.
    pub authorization: Option<&'a str>,
    /// A key in the query string (`?api_key=` or `?token=`).
    pub query_key: Option<&'a str>,
}

/// Decodes one SDK request into its events and identity links: gunzip, parse, check the
/// key, translate by the configured mapping. Any body is refused with a message, never a panic.
pub fn decode(
    which: Sdk,
    got: &Received<'_>,
    cfg: &IntakeConfig,
    now: i64,
) -> Result<Payload, SdkError> {
    let raw = unpack(got, cfg.max_body_bytes)?;
    let body = parse(&raw)?;
    let mapping = &cfg.mapping;
    match which {
        Sdk::PostHog => posthog::translate(&posthog::Request {
            body: &body,
            query_key: got.query_key,
            keys: &cfg.posthog.keys,
            mapping,
            now,
        }),
        Sdk::Segment(kind) => segment::translate(&segment::Request {
            kind,
            body_len: raw.len(),
            body: &body,
            auth_key: got
                .authorization
                .and_then(segment::basic_auth_key)
                .as_deref(),
            keys: &cfg.segment.keys,
            mapping,
            now,
        }),
    }
}

/// The JSON bytes of a body as browsers' SDKs send it: a form field `data=…` (a sendBeacon),
/// base64 (`?compression=base64`, or a form value that is not JSON), then gzip when marked or
/// when it starts with gzip's magic bytes (posthog-js posts gzip as `text/plain` unmarked).
pub fn unpack(got: &Received<'_>, limit: usize) -> Result<Vec<u8>, SdkError> {
    use base64::Engine;
    let mut body = got.body.to_vec();
    let form = body.starts_with(b"data=");
    if form {
        body = form_urlencoded::parse(&body)
            .find(|(k, _)| k == "data")
            .map(|(_, v)| v.into_owned().into_bytes())
            .unwrap_or_default();
    }
    let json_like = |b: &[u8]| {
        matches!(
            b.iter().find(|c| !c.is_ascii_whitespace()),
            Some(b'{' | b'[')
        )
    };
    if got.base64 || (form && !json_like(&body)) {
        let text: Vec<u8> = body
            .iter()
            .copied()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        body = base64::engine::general_purpose::STANDARD
            .decode(&text)
            .map_err(|e| SdkError::Invalid(format!("body: not valid base64: {e}")))?;
    }
    let magic = body.starts_with(&[0x1f, 0x8b]);
    gunzip(&body, got.gzip || magic, limit)
}

/// Gunzips a body when `gzip` says it is compressed, refusing more than `limit` bytes out.
pub fn gunzip(body: &[u8], gzip: bool, limit: usize) -> Result<Vec<u8>, SdkError> {
    if !gzip {
        return Ok(body.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| SdkError::Invalid(format!("body: not valid gzip: {e}")))?;
    if out.len() > limit {
        return Err(SdkError::TooLarge(format!(
            "body decompresses to more than {limit} bytes"
        )));
    }
    Ok(out)
}

/// Parses a JSON body.
pub fn parse(body: &[u8]) -> Result<Value, SdkError> {
    serde_json::from_slice(body).map_err(|e| SdkError::Invalid(format!("body: {e}")))
}

/// The clock-skew correction of a request: `now - sent_at`, added to every event's timestamp
/// (so an SDK whose clock is ahead by a minute has its events moved back by a minute).
pub fn skew(sent_at: Option<&Value>, now: i64) -> Result<i64, SdkError> {
    match sent_at {
        None | Some(Value::Null) => Ok(0),
        Some(v) => Ok(now - time(v).map_err(|e| SdkError::Invalid(format!("sent_at: {e}")))?),
    }
}

/// A timestamp given as RFC 3339 text or epoch milliseconds.
pub fn time(v: &Value) -> Result<i64, String> {
    match v {
        Value::String(s) => Timestamp::parse(s).map(|t| t.0),
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("{n} is not whole milliseconds"))
            .and_then(|ms| Timestamp::from_ms(ms).map(|t| t.0)),
        other => Err(format!("{other} is not a timestamp")),
    }
}

/// An event's time: its timestamp (else now) corrected by `skew`.
pub fn event_time(v: Option<&Value>, skew: i64, at: &str) -> Result<Timestamp, SdkError> {
    let bad = |e: String| SdkError::Invalid(format!("{at}.timestamp: {e}"));
    let t = match v {
        None | Some(Value::Null) => return Ok(Timestamp(now_ms())),
        Some(v) => time(v).map_err(bad)?,
    };
    Timestamp::from_ms(t + skew).map_err(bad)
}

/// A string field, if present and a string.
pub fn text<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Whether `presented` is one of `keys` (empty `keys` accepts any key, even none).
pub fn key_allowed(keys: &[String], presented: Option<&str>) -> bool {
    keys.is_empty() || presented.is_some_and(|p| keys.iter().any(|k| k == p))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use base64::Engine;

    use super::*;

    const NOW: i64 = 1_764_662_400_000;

    /// A PostHog batch as posthog-js sends it: a bare array of events.
    fn batch() -> Vec<u8> {
        br#"[{"event":"$pageview","distinct_id":"anon-1","timestamp":"2025-12-02T07:59:00Z","properties":{"$current_url":"https://td.example/app"}},
             {"event":"export","distinct_id":"anon-1","timestamp":"2025-12-02T07:59:30Z","properties":{}}]"#
            .to_vec()
    }

    fn gzipped(b: &[u8]) -> Vec<u8> {
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(b).unwrap();
        z.finish().unwrap()
    }

    fn events(body: &[u8], gzip: bool, base64: bool) -> Result<Vec<String>, SdkError> {
        let got = Received {
            body,
            gzip,
            base64,
            authorization: None,
            query_key: None,
        };
        let cfg = IntakeConfig::default();
        let payload = decode(Sdk::PostHog, &got, &cfg, NOW)?;
        Ok(payload
            .events
            .iter()
            .map(|e| e.event.feature.clone())
            .collect())
    }

    const SENT: [&str; 2] = ["$pageview", "export"];

    #[test]
    fn gzip_is_recognised_by_its_magic_bytes_without_a_marker() {
        // posthog-js posts gzip as text/plain with no Content-Encoding and no ?compression=.
        assert_eq!(events(&gzipped(&batch()), false, false).unwrap(), SENT);
        assert_eq!(events(&gzipped(&batch()), true, false).unwrap(), SENT);
    }

    #[test]
    fn an_unload_beacon_of_base64_in_a_form_is_read() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(batch());
        let form: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("data", &b64)
            .finish();
        assert_eq!(
            events(form.as_bytes(), false, true).unwrap(),
            SENT,
            "?compression=base64"
        );
        assert_eq!(
            events(form.as_bytes(), false, false).unwrap(),
            SENT,
            "no marker"
        );
        let plain: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("data", std::str::from_utf8(&batch()).unwrap())
            .finish();
        assert_eq!(
            events(plain.as_bytes(), false, false).unwrap(),
            SENT,
            "JSON in the form"
        );
    }

    #[test]
    fn a_body_that_is_no_base64_says_so() {
        let err = events(b"data=%%%not-base64", false, true).unwrap_err();
        assert!(err.to_string().contains("not valid base64"), "{err}");
    }
}
