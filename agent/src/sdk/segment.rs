//! Segment's HTTP tracking API: `/v1/track`, `/v1/page`, `/v1/screen`, `/v1/identify`,
//! `/v1/alias`, `/v1/group` (one message each) and `/v1/batch` (`{batch: [...], sentAt}`), also
//! by analytics.js's short paths (`/v1/t`, `/v1/p`, `/v1/s`, `/v1/i`, `/v1/a`, `/v1/g`, `/v1/b`),
//! with the write key in Basic auth or the body, and Segment's size limits.

use serde_json::{Map, Value};
use tda_schema::config::PropertyMapping;

use super::fields::{self, Source};
use super::{event_time, key_allowed, skew, text, Incoming, Payload, SdkError};

/// Largest message, bytes (Segment: 32 KB per call).
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// Largest batch request body, bytes (Segment: 500 KB per batch).
pub const MAX_BATCH_BYTES: usize = 500 * 1024;

/// The routes' message types (`/v1/<type>`), and `batch`.
pub const KINDS: &[&str] = &[
    "track", "page", "screen", "identify", "alias", "group", "batch",
];

/// The short paths of analytics.js (`@segment/analytics-next`) and their message types.
const SHORT: &[(&str, &str)] = &[
    ("t", "track"),
    ("p", "page"),
    ("s", "screen"),
    ("i", "identify"),
    ("a", "alias"),
    ("g", "group"),
    ("b", "batch"),
];

/// The message type a route takes (`/v1/track` or analytics.js's `/v1/t` …), or `batch`.
pub fn route_type(path: &str) -> Option<&'static str> {
    let path = path.strip_suffix('/').unwrap_or(path);
    let name = path.strip_prefix("/v1/")?;
    KINDS.iter().copied().find(|t| name == *t).or_else(|| {
        SHORT
            .iter()
            .find(|(short, _)| name == *short)
            .map(|(_, kind)| *kind)
    })
}

/// analytics.js's `context` (the page, the campaign, the browser) as properties under the names
/// every SDK's context gets (docs/sdk.md); a property sent under the same name wins.
fn browser_context(context: &Map<String, Value>, props: &mut Map<String, Value>) {
    let mut put = |name: &str, v: Option<&Value>| {
        if let Some(v) = v.filter(|v| !v.is_null()) {
            props.entry(name.to_string()).or_insert_with(|| v.clone());
        }
    };
    let page = context.get("page");
    for key in ["url", "path", "referrer", "title", "search"] {
        put(key, page.and_then(|p| p.get(key)));
    }
    let campaign = context.get("campaign");
    for (key, name) in [
        ("source", "utm_source"),
        ("medium", "utm_medium"),
        ("name", "utm_campaign"),
        ("term", "utm_term"),
        ("content", "utm_content"),
    ] {
        put(name, campaign.and_then(|c| c.get(key)));
    }
    put("user_agent", context.get("userAgent"));
    put("language", context.get("locale"));
    put("timezone", context.get("timezone"));
    let screen = context.get("screen");
    put("screen_width", screen.and_then(|s| s.get("width")));
    put("screen_height", screen.and_then(|s| s.get("height")));
}

/// How a request is to be read.
pub struct Request<'a> {
    /// The route's message type (`track` …) or `batch`.
    pub kind: &'a str,
    /// The raw body's length, bytes.
    pub body_len: usize,
    /// The parsed body.
    pub body: &'a Value,
    /// The write key from Basic auth, if sent.
    pub auth_key: Option<&'a str>,
    /// Keys accepted (empty: any).
    pub keys: &'a [String],
    /// Properties to fields.
    pub mapping: &'a PropertyMapping,
    /// The agent's clock, epoch ms.
    pub now: i64,
}

/// The write key of a `Basic base64(key:)` authorization header.
pub fn basic_auth_key(header: &str) -> Option<String> {
    use base64::Engine;
    let encoded = header.strip_prefix("Basic ")?.trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(text.split(':').next().unwrap_or_default().to_string())
}

/// The request's events and identity links; user ids are the sent `userId` (else
/// `anonymousId`).
pub fn translate(req: &Request<'_>) -> Result<Payload, SdkError> {
    let limit = if req.kind == "batch" {
        MAX_BATCH_BYTES
    } else {
        MAX_MESSAGE_BYTES
    };
    if req.body_len > limit {
        return Err(SdkError::TooLarge(format!(
            "body: {} bytes, Segment's limit is {limit}",
            req.body_len
        )));
    }
    let top = req
        .body
        .as_object()
        .ok_or_else(|| SdkError::Invalid("body: must be a JSON object".into()))?;
    let key = req.auth_key.or_else(|| text(top, "writeKey"));
    if !key_allowed(req.keys, key) {
        return Err(SdkError::Unauthorized(
            "write key: not one of intake.segment.keys".into(),
        ));
    }
    let skew = skew(top.get("sentAt"), req.now)?;
    let mut out = Payload {
        key: key.map(str::to_string),
        ..Payload::default()
    };
    if req.kind != "batch" {
        message(top, req.kind, "body", skew, req.mapping, &mut out)?;
        return Ok(out);
    }
    let batch = match top.get("batch") {
        Some(Value::Array(b)) => b,
        _ => {
            return Err(SdkError::Invalid(
                "batch: must be an array of messages".into(),
            ))
        }
    };
    for (i, m) in batch.iter().enumerate() {
        let at = format!("batch[{i}]");
        let o = m
            .as_object()
            .ok_or_else(|| SdkError::Invalid(format!("{at}: must be an object")))?;
        let size = serde_json::to_vec(m).map_or(0, |v| v.len());
        if size > MAX_MESSAGE_BYTES {
            return Err(SdkError::TooLarge(format!(
                "{at}: {size} bytes, Segment's limit is {MAX_MESSAGE_BYTES}"
            )));
        }
        let kind =
            text(o, "type").ok_or_else(|| SdkError::Invalid(format!("{at}.type: missing")))?;
        message(o, kind, &at, skew, req.mapping, &mut out)?;
    }
    Ok(out)
}

fn message(
    o: &Map<String, Value>,
    kind: &str,
    at: &str,
    skew: i64,
    mapping: &PropertyMapping,
    out: &mut Payload,
) -> Result<(), SdkError> {
    let bad = |msg: String| SdkError::Invalid(format!("{at}.{msg}"));
    let user = text(o, "userId");
    let who = user
        .or_else(|| text(o, "anonymousId"))
        .ok_or_else(|| bad("userId: missing (and no anonymousId)".into()))?;
    let name = match kind {
        "track" => Some(text(o, "event").ok_or_else(|| bad("event: missing event name".into()))?),
        "page" | "screen" => Some(text(o, "name").unwrap_or(kind)),
        "identify" => return link(out, text(o, "anonymousId"), user),
        "alias" => return link(out, text(o, "previousId"), user),
        "group" => return Ok(()),
        other => {
            return Err(bad(format!(
                "type: `{other}` is not a Segment message type"
            )))
        }
    };
    let mut properties = match o.get("properties") {
        Some(Value::Object(p)) => p.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err(bad("properties: must be an object".into())),
    };
    if let Some(Value::Object(context)) = o.get("context") {
        browser_context(context, &mut properties);
    }
    let src = Source {
        at,
        name,
        user_id: who.to_string(),
        timestamp: event_time(o.get("timestamp"), skew, at)?,
        properties,
    };
    out.events.push(Incoming {
        id: text(o, "messageId").map(|m| format!("segment:{m}")),
        event: fields::event(mapping, src)?,
    });
    Ok(())
}

fn link(out: &mut Payload, from: Option<&str>, to: Option<&str>) -> Result<(), SdkError> {
    if let (Some(from), Some(to)) = (from, to) {
        out.links.push((from.to_string(), to.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_764_662_400_000; // 2025-12-02T08:00:00Z

    fn run(
        kind: &str,
        body: Value,
        auth: Option<&str>,
        keys: &[String],
    ) -> Result<Payload, SdkError> {
        translate(&Request {
            kind,
            body_len: serde_json::to_vec(&body).unwrap().len(),
            body: &body,
            auth_key: auth,
            keys,
            mapping: &PropertyMapping::default(),
            now: NOW,
        })
    }

    #[test]
    fn analytics_js_context_becomes_properties() {
        let track = json!({"type": "track", "event": "export", "userId": "u1", "properties": {"plan": "pro", "title": "mine"},
            "context": {"page": {"url": "https://td.example/app?x=1", "path": "/app", "referrer": "https://search.example/", "title": "TD"},
                "campaign": {"source": "newsletter", "medium": "email", "name": "launch"},
                "userAgent": "Mozilla/5.0", "locale": "de-DE", "screen": {"width": 1280, "height": 800}}});
        let out = run("track", track, None, &[]).unwrap();
        let e = &out.events[0].event;
        assert_eq!(
            e.route.as_deref(),
            Some("/app"),
            "the page's path is the route"
        );
        assert_eq!(
            Value::Object(e.properties.clone()),
            json!({"plan": "pro", "title": "mine", "url": "https://td.example/app?x=1",
                "referrer": "https://search.example/", "utm_source": "newsletter", "utm_medium": "email",
                "utm_campaign": "launch", "user_agent": "Mozilla/5.0", "language": "de-DE",
                "screen_width": 1280, "screen_height": 800})
        );
    }

    #[test]
    fn analytics_js_short_paths_are_the_same_routes() {
        for (short, long) in [
            ("t", "track"),
            ("p", "page"),
            ("s", "screen"),
            ("i", "identify"),
            ("a", "alias"),
            ("g", "group"),
            ("b", "batch"),
        ] {
            assert_eq!(route_type(&format!("/v1/{short}")), Some(long));
            assert_eq!(route_type(&format!("/v1/{long}/")), Some(long));
        }
        assert_eq!(route_type("/v1/x"), None);
        assert_eq!(route_type("/v2/t"), None);
    }

    #[test]
    fn track_page_identify_and_alias_in_one_batch() {
        let body = json!({"sentAt": "2025-12-02T08:00:00Z", "batch": [
            {"type": "track", "event": "Report Exported", "userId": "u1", "messageId": "m1",
             "timestamp": "2025-12-02T07:59:00Z", "properties": {"feature": "export", "latency_ms": 40}},
            {"type": "page", "name": "Pricing", "anonymousId": "a1", "properties": {"path": "/pricing"}},
            {"type": "identify", "userId": "u1", "anonymousId": "a1", "traits": {"plan": "pro"}},
            {"type": "alias", "userId": "u1", "previousId": "old"},
            {"type": "group", "userId": "u1", "groupId": "g"},
        ]});
        let p = run("batch", body, None, &[]).unwrap();
        assert_eq!(p.events.len(), 2);
        let (track, page) = (&p.events[0], &p.events[1]);
        assert_eq!(track.id.as_deref(), Some("segment:m1"));
        assert_eq!(
            (track.event.feature.as_str(), track.event.latency_ms),
            ("export", Some(40.0))
        );
        assert_eq!(track.event.timestamp.0, NOW - 60_000);
        assert_eq!(
            (page.event.feature.as_str(), page.event.route.as_deref()),
            ("Pricing", Some("/pricing"))
        );
        assert_eq!(page.event.user_id, "a1");
        assert_eq!(
            p.links,
            vec![("a1".into(), "u1".into()), ("old".into(), "u1".into())]
        );
    }

    #[test]
    fn the_write_key_comes_from_basic_auth_or_the_body() {
        assert_eq!(
            basic_auth_key("Basic d2tfMTIzOg==").as_deref(),
            Some("wk_123")
        );
        let keys = vec!["wk_123".to_string()];
        let track = json!({"event": "x", "userId": "u"});
        assert!(run("track", track.clone(), Some("wk_123"), &keys).is_ok());
        assert!(matches!(
            run("track", track.clone(), Some("nope"), &keys),
            Err(SdkError::Unauthorized(_))
        ));
        assert!(matches!(
            run("track", track, None, &keys),
            Err(SdkError::Unauthorized(_))
        ));
        let in_body = json!({"event": "x", "userId": "u", "writeKey": "wk_123"});
        assert!(run("track", in_body, None, &keys).is_ok());
    }

    #[test]
    fn segment_size_limits_hold() {
        let big = "x".repeat(MAX_MESSAGE_BYTES);
        let track = json!({"event": "x", "userId": "u", "properties": {"blob": big}});
        let err = run("track", track.clone(), None, &[]).unwrap_err();
        assert!(
            matches!(&err, SdkError::TooLarge(m) if m.contains("limit is 32768")),
            "{err}"
        );
        let err = run("batch", json!({"batch": [track]}), None, &[]).unwrap_err();
        assert!(
            matches!(&err, SdkError::TooLarge(m) if m.starts_with("batch[0]: ")),
            "{err}"
        );
    }

    #[test]
    fn malformed_messages_name_their_place() {
        let err = |b: Value| run("batch", b, None, &[]).unwrap_err().to_string();
        assert_eq!(
            err(json!({"batch": [{"type": "track", "userId": "u"}]})),
            "batch[0].event: missing event name"
        );
        assert_eq!(
            err(json!({"batch": [{"type": "track", "event": "e"}]})),
            "batch[0].userId: missing (and no anonymousId)"
        );
        assert_eq!(
            err(json!({"batch": [{"type": "boop", "userId": "u"}]})),
            "batch[0].type: `boop` is not a Segment message type"
        );
        assert_eq!(
            err(json!({"batch": [{"userId": "u"}]})),
            "batch[0].type: missing"
        );
    }
}
