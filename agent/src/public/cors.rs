//! CORS for the public intake: which page origins may send, the preflight answer, and the
//! grant every answer to an allowed origin carries.

use hyper::header::{HeaderMap, HeaderValue, ACCESS_CONTROL_REQUEST_HEADERS, VARY};
use hyper::StatusCode;
use tda_daemon::Response;

/// How long a browser may reuse a preflight answer, seconds.
const PREFLIGHT_MAX_AGE: &str = "86400";

/// Whether `origin` (the browser's `Origin` header) is one of `allowed` (or `allowed` has `*`).
pub fn allowed(allowed: &[String], origin: &str) -> bool {
    allowed
        .iter()
        .any(|o| o == "*" || o.trim_end_matches('/').eq_ignore_ascii_case(origin))
}

/// Adds the grant for `origin` to an answer: the origin itself (never `*`, so SDKs that send
/// credentials work too), and `Vary: Origin` for caches.
pub fn grant(resp: &mut Response, origin: &str) {
    let Ok(value) = HeaderValue::from_str(origin) else {
        return;
    };
    let h = resp.headers_mut();
    h.insert("access-control-allow-origin", value);
    h.insert(
        "access-control-allow-credentials",
        HeaderValue::from_static("true"),
    );
    h.append(VARY, HeaderValue::from_static("Origin"));
}

/// The answer to a preflight (`OPTIONS`) from an allowed origin: the methods the SDKs use and
/// the headers the request asked for, when each is a plain header name.
pub fn preflight(origin: &str, request: &HeaderMap) -> Response {
    let mut resp = Response::new(tda_daemon::Body::default());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    grant(&mut resp, origin);
    let h = resp.headers_mut();
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    h.insert(
        "access-control-max-age",
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    let asked = request
        .get(ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|v| v.to_str().ok())
        .filter(|v| plain_names(v))
        .and_then(|v| HeaderValue::from_str(v).ok());
    if let Some(asked) = asked {
        h.insert("access-control-allow-headers", asked);
    }
    h.append(
        VARY,
        HeaderValue::from_static("Access-Control-Request-Headers"),
    );
    resp
}

/// Whether `list` is comma-separated header names (letters, digits, `-`).
fn plain_names(list: &str) -> bool {
    list.split(',').all(|n| {
        let n = n.trim();
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_exactly_or_by_star() {
        let list = vec!["https://app.example.com".to_string()];
        assert!(allowed(&list, "https://app.example.com"));
        assert!(allowed(&list, "HTTPS://APP.example.com"));
        assert!(!allowed(&list, "https://app.example.com:8443"));
        assert!(!allowed(&list, "https://evil.example"));
        assert!(!allowed(&list, "null"));
        assert!(allowed(&["*".to_string()], "https://evil.example"));
    }

    #[test]
    fn a_preflight_grants_the_origin_and_the_asked_headers() {
        let mut asked = HeaderMap::new();
        asked.insert(
            ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("authorization,content-type,x-retry-count"),
        );
        let resp = preflight("https://app.example.com", &asked);
        let h = resp.headers();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
        assert_eq!(
            h["access-control-allow-headers"],
            "authorization,content-type,x-retry-count"
        );
        asked.insert(
            ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("content-type, x-a\"b"),
        );
        let resp = preflight("https://app.example.com", &asked);
        assert!(!resp.headers().contains_key("access-control-allow-headers"));
    }
}
