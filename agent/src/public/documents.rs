//! The configuration documents browser SDKs fetch before they send: posthog-js's flags and
//! remote config ("no flags, no session recording, nothing more to load") and analytics.js's
//! project settings (send everything to this intake, no other destination).

use serde_json::{json, Value};

/// posthog-js's `/flags/` (v2) and `/decide/` answer: no feature flags, no session recording,
/// no site apps; gzip accepted. Both shapes in one document.
pub fn posthog_flags() -> Value {
    let mut doc = posthog_config_fields();
    let extra = json!({
        "flags": {},
        "featureFlags": {},
        "featureFlagPayloads": {},
        "errorsWhileComputingFlags": false,
        "quotaLimited": [],
        "requestId": "",
        "toolbarParams": {},
        "isAuthenticated": false,
        "editorParams": {},
        "config": {"enable_collect_everything": true},
    });
    if let (Some(d), Value::Object(e)) = (doc.as_object_mut(), extra) {
        d.extend(e);
    }
    doc
}

/// posthog-js's remote config (`/array/<key>/config`) for `key`.
pub fn posthog_config(key: &str) -> Value {
    let mut doc = posthog_config_fields();
    if let Some(d) = doc.as_object_mut() {
        d.insert("token".into(), json!(key));
    }
    doc
}

/// The same as a script (`/array/<key>/config.js`), which posthog-js loads with a `<script>`
/// tag: it sets `window._POSTHOG_REMOTE_CONFIG[key]`.
pub fn posthog_config_script(key: &str) -> String {
    let doc = json!({"config": posthog_config(key), "siteApps": []});
    let key = Value::String(key.to_string());
    format!(
        "(function(){{var w=window;w._POSTHOG_REMOTE_CONFIG=w._POSTHOG_REMOTE_CONFIG||{{}};\
         w._POSTHOG_REMOTE_CONFIG[{key}]={doc};}})();\n"
    )
}

/// What posthog-js reads off its remote config: everything optional off. `surveys` is left out:
/// posthog-js (1.449) fetches its surveys bundle whenever the field is present, even `false`.
fn posthog_config_fields() -> Value {
    json!({
        "supportedCompression": ["gzip", "gzip-js"],
        "hasFeatureFlags": false,
        "sessionRecording": false,
        "heatmaps": false,
        "siteApps": [],
        "autocapture_opt_out": false,
        "autocaptureExceptions": false,
        "captureDeadClicks": false,
        "capturePerformance": false,
        "elementsChainAsString": true,
        "defaultIdentifiedOnly": true,
        "analytics": {"endpoint": "/e/"},
    })
}

/// analytics.js's project settings for `write_key`: its one destination, "Segment.io", sends
/// to `api_host` (`host[:port]/v1`, no scheme) over `protocol`; no other integrations, no
/// remote plugins, no metrics sent back to Segment.
pub fn segment_settings(write_key: &str, api_host: &str, protocol: &str) -> Value {
    json!({
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": api_host,
                "protocol": protocol,
                "unbundledIntegrations": [],
                "addBundledMetadata": true,
                "maybeBundledConfigIds": {},
            }
        },
        "plan": {
            "track": {"__default": {"enabled": true, "integrations": {}}},
            "identify": {"__default": {"enabled": true}},
            "group": {"__default": {"enabled": true}},
        },
        "edgeFunction": {},
        "analyticsNextEnabled": true,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0.0},
        "legacyVideoPluginsEnabled": false,
        "remotePlugins": [],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_answer_has_no_flags_and_no_recording() {
        let d = posthog_flags();
        assert_eq!(d["flags"], json!({}));
        assert_eq!(d["featureFlags"], json!({}));
        assert_eq!(d["sessionRecording"], json!(false));
        assert_eq!(d["errorsWhileComputingFlags"], json!(false));
    }

    #[test]
    fn the_config_script_sets_the_key_s_config() {
        let js = posthog_config_script("phc_a\"b");
        assert!(
            js.contains(r#"w._POSTHOG_REMOTE_CONFIG["phc_a\"b"]={"#),
            "{js}"
        );
        assert!(js.contains(r#""token":"phc_a\"b""#), "{js}");
    }

    #[test]
    fn segment_settings_point_at_this_intake() {
        let d = segment_settings("wk", "intake.example.com/v1", "https");
        let s = &d["integrations"]["Segment.io"];
        assert_eq!(s["apiHost"], "intake.example.com/v1");
        assert_eq!(s["protocol"], "https");
        assert_eq!(s["apiKey"], "wk");
        assert_eq!(d["remotePlugins"], json!([]));
    }
}
