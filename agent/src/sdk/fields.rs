//! An SDK event's (or a request-log line's) properties to a usage event's fields, by the
//! configured [`PropertyMapping`].

use serde_json::{Map, Value};
use tda_schema::config::PropertyMapping;
use tda_schema::{Event, Timestamp};

use super::SdkError;

/// Properties kept although their names start with `$` (SDK internals otherwise).
const KEPT_DOLLAR: &[&str] = &["$lib", "$lib_version"];

/// posthog-js's browser context, kept under the names every SDK's context gets (docs/sdk.md):
/// what page views need to form journeys and be filtered and segmented.
const BROWSER_CONTEXT: &[(&str, &str)] = &[
    ("$current_url", "url"),
    ("$host", "host"),
    ("$referrer", "referrer"),
    ("$referring_domain", "referring_domain"),
    ("$browser", "browser"),
    ("$browser_version", "browser_version"),
    ("$os", "os"),
    ("$os_version", "os_version"),
    ("$device_type", "device_type"),
    ("$screen_width", "screen_width"),
    ("$screen_height", "screen_height"),
    ("$viewport_width", "viewport_width"),
    ("$viewport_height", "viewport_height"),
    ("$browser_language", "language"),
    ("$timezone", "timezone"),
];

/// PostHog's server SDKs (`$lib`): their `$os` and the like describe the server, not the user's
/// browser, and are dropped with the other internals.
const SERVER_LIBS: &[&str] = &[
    "posthog-python",
    "posthog-node",
    "posthog-ruby",
    "posthog-go",
    "posthog-java",
    "posthog-php",
    "posthog-dotnet",
    "posthog-rs",
    "posthog-elixir",
];

/// Moves posthog-js's `$` browser context to its plain names (a property sent under the plain
/// name wins); not for a server SDK's events.
fn rename_browser_context(props: &mut Map<String, Value>) {
    let lib = props.get("$lib").and_then(Value::as_str).unwrap_or("");
    if SERVER_LIBS.contains(&lib) {
        return;
    }
    for (from, to) in BROWSER_CONTEXT {
        if let Some(v) = props.remove(*from) {
            props.entry(to.to_string()).or_insert(v);
        }
    }
}

/// What is known of one event before the mapping applies.
pub struct Source<'a> {
    /// Where it is in the request, for errors (`batch[3]`).
    pub at: &'a str,
    /// The event's name, the feature when no feature property is present.
    pub name: Option<&'a str>,
    /// The (already mapped) user id.
    pub user_id: String,
    /// When it happened (already corrected for skew).
    pub timestamp: Timestamp,
    /// The properties sent.
    pub properties: Map<String, Value>,
}

/// Builds and validates the usage event.
pub fn event(mapping: &PropertyMapping, mut src: Source<'_>) -> Result<Event, SdkError> {
    let at = src.at;
    let props = &mut src.properties;
    let bad = |field: &str, msg: String| SdkError::Invalid(format!("{at}.{field}: {msg}"));
    let route = take(props, &mapping.route).map(|v| string(&v));
    let status = match take(props, &mapping.status) {
        Some(v) => Some(status(&v).map_err(|m| bad("status", m))?),
        None => None,
    };
    let latency_ms = match take(props, &mapping.latency_ms) {
        Some(v) => Some(number(&v).map_err(|m| bad("latency_ms", m))?),
        None => None,
    };
    let error = take(props, &mapping.error).map(|v| string(&v));
    let session_id = take(props, &mapping.session_id).map(|v| string(&v));
    let feature = take(props, &mapping.feature)
        .map(|v| string(&v))
        .or_else(|| src.name.map(str::to_string))
        .or_else(|| route.clone())
        .ok_or_else(|| bad("feature", "no feature property, event name or route".into()))?;
    rename_browser_context(props);
    // Nulls say nothing (posthog-js sends every click id it looks for, most as null).
    props.retain(|k, v| !v.is_null() && (!k.starts_with('$') || KEPT_DOLLAR.contains(&k.as_str())));
    let event = Event {
        timestamp: src.timestamp,
        user_id: src.user_id,
        session_id,
        feature,
        route,
        status,
        latency_ms,
        error,
        properties: std::mem::take(props),
    };
    event.validate().map_err(|(field, msg)| bad(field, msg))?;
    Ok(event)
}

/// Takes the first present, non-null property of `names` out of `props`.
fn take(props: &mut Map<String, Value>, names: &[String]) -> Option<Value> {
    names
        .iter()
        .find_map(|n| props.remove(n).filter(|v| !v.is_null()))
}

/// A value as text: strings as they are, anything else as JSON.
fn string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn number(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("{n} is not a number")),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a number")),
        other => Err(format!("{other} is not a number")),
    }
}

fn status(v: &Value) -> Result<u16, String> {
    let n = number(v)?;
    if n.fract() == 0.0 && (100.0..=599.0).contains(&n) {
        Ok(n as u16)
    } else {
        Err(format!("{v} is not an HTTP status (100-599)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn source(props: Value) -> Source<'static> {
        Source {
            at: "batch[0]",
            name: Some("export clicked"),
            user_id: "u1".into(),
            timestamp: Timestamp(1_700_000_000_000),
            properties: props.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn the_default_mapping_fills_every_field_and_keeps_the_rest() {
        let props = json!({"feature": "export", "$pathname": "/api/v1/export", "status": "503",
            "duration_ms": 12.5, "$exception_type": "Timeout", "$session_id": "s1",
            "plan": "pro", "$lib": "posthog-python", "$geoip_disable": true});
        let e = event(&PropertyMapping::default(), source(props)).unwrap();
        assert_eq!(
            (
                e.feature.as_str(),
                e.route.as_deref(),
                e.status,
                e.latency_ms
            ),
            ("export", Some("/api/v1/export"), Some(503), Some(12.5))
        );
        assert_eq!(
            (e.error.as_deref(), e.session_id.as_deref()),
            (Some("Timeout"), Some("s1"))
        );
        assert_eq!(
            Value::Object(e.properties),
            json!({"plan": "pro", "$lib": "posthog-python"})
        );
    }

    #[test]
    fn posthog_js_browser_context_is_kept_under_plain_names() {
        let props = json!({"$current_url": "https://td.example/app?x=1", "$pathname": "/app",
            "$referrer": "https://search.example/", "$browser": "Chrome", "$os": "Linux",
            "$device_type": "Desktop", "$screen_width": 1280, "utm_source": "newsletter",
            "$timezone": "Europe/Berlin", "$insert_id": "x1", "url": "sent plainly wins",
            "gclid": null, "utm_term": null});
        let server = json!({"$os": "Linux", "$lib": "posthog-python"});
        let e = event(&PropertyMapping::default(), source(server)).unwrap();
        assert_eq!(
            Value::Object(e.properties),
            json!({"$lib": "posthog-python"}),
            "the server's OS is no user context"
        );
        let e = event(&PropertyMapping::default(), source(props)).unwrap();
        assert_eq!(e.route.as_deref(), Some("/app"));
        assert_eq!(
            Value::Object(e.properties),
            json!({"url": "sent plainly wins", "referrer": "https://search.example/",
                "browser": "Chrome", "os": "Linux", "device_type": "Desktop", "screen_width": 1280,
                "utm_source": "newsletter", "timezone": "Europe/Berlin"})
        );
    }

    #[test]
    fn the_event_name_is_the_feature_unless_a_property_names_one() {
        let e = event(&PropertyMapping::default(), source(json!({}))).unwrap();
        assert_eq!(e.feature, "export clicked");
        let mapping = PropertyMapping {
            feature: vec!["screen".into()],
            ..PropertyMapping::default()
        };
        let e = event(
            &mapping,
            source(json!({"screen": "reports", "feature": "x"})),
        )
        .unwrap();
        assert_eq!(e.feature, "reports");
        assert_eq!(Value::Object(e.properties), json!({"feature": "x"}));
    }

    #[test]
    fn bad_values_are_errors_that_name_the_event_and_field() {
        let m = PropertyMapping::default();
        let err = |p: Value| event(&m, source(p)).unwrap_err().to_string();
        assert_eq!(
            err(json!({"status": 42})),
            "batch[0].status: 42 is not an HTTP status (100-599)"
        );
        assert_eq!(
            err(json!({"latency_ms": "fast"})),
            "batch[0].latency_ms: `fast` is not a number"
        );
        assert_eq!(
            err(json!({"latency_ms": -1})),
            "batch[0].latency_ms: -1 must be a finite number >= 0"
        );
    }
}
