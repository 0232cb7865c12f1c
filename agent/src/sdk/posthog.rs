//! PostHog's capture API: `/capture`, `/batch`, `/e` and `/i/v0/e`, taking a single event, a
//! bare array of events, or `{api_key, batch: [...], sent_at}`.

use serde_json::{Map, Value};
use tda_schema::config::PropertyMapping;

use super::fields::{self, Source};
use super::{event_time, key_allowed, skew, text, Incoming, Payload, SdkError};

/// The capture routes (each also with a trailing `/`).
pub const ROUTES: &[&str] = &["/capture", "/batch", "/e", "/i/v0/e"];

/// Events that carry identity or person properties rather than usage.
const PERSON_EVENTS: &[&str] = &[
    "$set",
    "$set_once",
    "$groupidentify",
    "$identify",
    "$create_alias",
];

/// Whether `path` is a capture route.
pub fn is_route(path: &str) -> bool {
    ROUTES.contains(&path.strip_suffix('/').unwrap_or(path))
}

/// How a request is to be read.
pub struct Request<'a> {
    /// The parsed body.
    pub body: &'a Value,
    /// A key given in the query string (`?api_key=` or `?token=`).
    pub query_key: Option<&'a str>,
    /// Keys accepted (empty: any).
    pub keys: &'a [String],
    /// Properties to fields.
    pub mapping: &'a PropertyMapping,
    /// The agent's clock, epoch ms.
    pub now: i64,
}

/// The request's events and identity links; user ids are the sent `distinct_id`s.
pub fn translate(req: &Request<'_>) -> Result<Payload, SdkError> {
    let (messages, top) = shape(req.body)?;
    let key = top
        .and_then(|t| text(t, "api_key").or_else(|| text(t, "token")))
        .or(req.query_key)
        .or_else(|| messages.first().and_then(|m| message_key(m)));
    if !key_allowed(req.keys, key) {
        return Err(SdkError::Unauthorized(
            "api_key: not one of intake.posthog.keys".into(),
        ));
    }
    let skew = skew(top.and_then(|t| t.get("sent_at")), req.now)?;
    let mut out = Payload {
        key: key.map(str::to_string),
        ..Payload::default()
    };
    for (i, m) in messages.iter().enumerate() {
        message(m, &format!("batch[{i}]"), skew, req.mapping, &mut out)?;
    }
    Ok(out)
}

/// A request's messages and the object holding its request-wide fields, if any.
type Shape<'a> = (&'a [Value], Option<&'a Map<String, Value>>);

/// The messages and the object holding request-wide fields (`api_key`, `sent_at`), if any.
fn shape(body: &Value) -> Result<Shape<'_>, SdkError> {
    match body {
        Value::Array(events) => Ok((events, None)),
        Value::Object(o) => match o.get("batch") {
            Some(Value::Array(events)) => Ok((events, Some(o))),
            Some(_) => Err(SdkError::Invalid(
                "batch: must be an array of events".into(),
            )),
            None => Ok((std::slice::from_ref(body), Some(o))),
        },
        _ => Err(SdkError::Invalid(
            "body: must be an event, an array of events or {\"batch\": [...]}".into(),
        )),
    }
}

fn message_key(m: &Value) -> Option<&str> {
    let o = m.as_object()?;
    text(o, "api_key").or_else(|| {
        o.get("properties")?
            .as_object()
            .and_then(|p| text(p, "token"))
    })
}

fn message(
    m: &Value,
    at: &str,
    skew: i64,
    mapping: &PropertyMapping,
    out: &mut Payload,
) -> Result<(), SdkError> {
    let bad = |msg: &str| SdkError::Invalid(format!("{at}.{msg}"));
    let o = m
        .as_object()
        .ok_or_else(|| bad("event: must be an object"))?;
    let name = text(o, "event").ok_or_else(|| bad("event: missing event name"))?;
    let mut properties = match o.get("properties") {
        Some(Value::Object(p)) => p.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err(bad("properties: must be an object")),
    };
    let distinct = distinct_id(
        o.get("distinct_id")
            .or_else(|| properties.get("distinct_id")),
    )
    .ok_or_else(|| bad("distinct_id: missing"))?;
    properties.remove("distinct_id");
    properties.remove("token");
    if PERSON_EVENTS.contains(&name) {
        let other = match name {
            "$identify" => text(&properties, "$anon_distinct_id"),
            "$create_alias" => text(&properties, "alias"),
            _ => None,
        };
        if let Some(anonymous) = other {
            out.links.push((anonymous.to_string(), distinct));
        }
        return Ok(());
    }
    let src = Source {
        at,
        name: Some(name),
        user_id: distinct,
        timestamp: event_time(o.get("timestamp"), skew, at)?,
        properties,
    };
    out.events.push(Incoming {
        id: text(o, "uuid").map(|u| format!("posthog:{u}")),
        event: fields::event(mapping, src)?,
    });
    Ok(())
}

/// A `distinct_id` as text (SDKs send strings; some send numbers).
fn distinct_id(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_764_662_400_000; // 2025-12-02T08:00:00Z

    fn run(body: Value, keys: &[String]) -> Result<Payload, SdkError> {
        translate(&Request {
            body: &body,
            query_key: None,
            keys,
            mapping: &PropertyMapping::default(),
            now: NOW,
        })
    }

    fn one(name: &str, ts: &str) -> Value {
        json!({"event": name, "distinct_id": "u1", "timestamp": ts, "uuid": "0191-a",
               "properties": {"feature": "generate", "$lib": "posthog-python"}})
    }

    #[test]
    fn the_three_body_shapes_give_the_same_events() {
        let e = one("generate", "2025-12-02T07:59:00Z");
        let single = run(e.clone(), &[]).unwrap();
        let array = run(json!([e.clone()]), &[]).unwrap();
        let batch = run(json!({"api_key": "k", "batch": [e]}), &[]).unwrap();
        assert_eq!(single, array);
        assert_eq!(array.events, batch.events);
        assert_eq!(
            batch.key.as_deref(),
            Some("k"),
            "the key the batch presented"
        );
        let got = &single.events[0];
        assert_eq!(got.id.as_deref(), Some("posthog:0191-a"));
        assert_eq!(
            (got.event.feature.as_str(), got.event.user_id.as_str()),
            ("generate", "u1")
        );
        assert_eq!(got.event.timestamp.0, NOW - 60_000);
    }

    #[test]
    fn sent_at_corrects_the_clock_of_the_sender() {
        // The sender's clock is 5 minutes fast: its event at 08:04 happened at 07:59.
        let body = json!({"api_key": "k", "sent_at": "2025-12-02T08:05:00Z",
                          "batch": [one("generate", "2025-12-02T08:04:00Z")]});
        let p = run(body, &[]).unwrap();
        assert_eq!(p.events[0].event.timestamp.0, NOW - 60_000);
    }

    #[test]
    fn identify_and_alias_link_ids_and_are_not_usage() {
        let body = json!([
            {"event": "$identify", "distinct_id": "user-7", "properties": {"$anon_distinct_id": "anon-1"}},
            {"event": "$create_alias", "distinct_id": "user-7", "properties": {"alias": "old-id"}},
            {"event": "$set", "distinct_id": "user-7", "properties": {"$set": {"plan": "pro"}}},
        ]);
        let p = run(body, &[]).unwrap();
        assert!(p.events.is_empty());
        assert_eq!(
            p.links,
            vec![
                ("anon-1".into(), "user-7".into()),
                ("old-id".into(), "user-7".into())
            ]
        );
    }

    #[test]
    fn keys_are_checked_when_configured() {
        let keys = vec!["phc_right".to_string()];
        let body = json!({"api_key": "phc_wrong", "batch": []});
        assert!(matches!(run(body, &keys), Err(SdkError::Unauthorized(_))));
        let body = json!({"api_key": "phc_right", "batch": []});
        assert!(run(body, &keys).is_ok());
        let e = json!({"event": "x", "distinct_id": "u", "properties": {"token": "phc_right"}});
        assert!(run(e, &keys).is_ok(), "the JS SDK's token property");
    }

    #[test]
    fn malformed_events_name_their_place() {
        let err = |b: Value| run(b, &[]).unwrap_err().to_string();
        assert_eq!(
            err(json!({"batch": [{"event": "x", "distinct_id": "u"}, {"event": "x"}]})),
            "batch[1].distinct_id: missing"
        );
        assert_eq!(
            err(json!([{"distinct_id": "u"}])),
            "batch[0].event: missing event name"
        );
        assert_eq!(
            err(json!("hello")),
            "body: must be an event, an array of events or {\"batch\": [...]}"
        );
        assert_eq!(
            err(json!([{"event": "x", "distinct_id": "u", "timestamp": "yesterday"}])),
            "batch[0].timestamp: `yesterday` is neither RFC 3339 nor epoch milliseconds (the 'year' component could not be parsed)"
        );
    }
}
