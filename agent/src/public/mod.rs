//! The public intake: a second listener that browsers reach, serving only the PostHog and
//! Segment routes, their CORS preflights and the documents their SDKs fetch, behind an origin
//! allowlist, per-IP and per-key rate limits and size limits.

pub mod cors;
pub mod documents;
pub mod limit;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, HOST, ORIGIN, RETRY_AFTER};
use hyper::{Method, Request, StatusCode};
use tda_daemon::{json, with_type, Peer, Response};
use tda_schema::config::{IntakeConfig, PublicIntake};

use crate::counters::add;
use crate::intake::Intake;
use crate::sdk::{posthog, segment, Payload, Sdk};
use limit::Buckets;

tda_daemon::counters! {
    /// What the public intake counts beyond the intake's own counters.
    pub struct PublicCounters;
    /// A copy of [`PublicCounters`] for `/healthz` and `/metrics`.
    pub struct PublicSnapshot;
    {
        /// Requests to the public listener.
        requests => "tda_agent_public_requests_total",
        /// CORS preflights answered with a grant.
        preflights => "tda_agent_public_preflights_total",
        /// Requests refused because their page origin is not allowed (403).
        refused_origin => "tda_agent_public_requests_refused_total" ["reason" = "origin"],
        /// Requests refused by the per-IP rate limit (429).
        refused_ip_rate => "tda_agent_public_requests_refused_total" ["reason" = "ip_rate"],
        /// Requests refused by the per-key rate limit (429).
        refused_key_rate => "tda_agent_public_requests_refused_total" ["reason" = "key_rate"],
        /// Requests refused because one of their events was over `max_event_bytes` (413).
        refused_event_size => "tda_agent_public_requests_refused_total" ["reason" = "event_size"],
        /// Requests for a config document of an unknown key (404).
        refused_unknown_key => "tda_agent_public_requests_refused_total" ["reason" = "unknown_key"],
    }
    families {
        "tda_agent_public_requests_refused_total" => "Public intake requests refused by its own checks, by reason (other refusals are in tda_agent_intake_requests_rejected_total and _unrouted_total).",
    }
}

/// The public listener's handler: the intake it hands events to, and its rate limits.
pub struct Public {
    intake: Arc<Intake>,
    tls: bool,
    per_ip: Buckets<IpAddr>,
    per_key: Buckets<String>,
}

/// What a route of the public intake is.
enum Route<'a> {
    Capture(Sdk),
    Flags,
    PostHogConfig(&'a str, bool),
    SegmentSettings(&'a str),
}

impl Public {
    /// The handler of a listener with (`tls`) or without TLS.
    pub fn new(intake: Arc<Intake>, tls: bool) -> Self {
        Public {
            intake,
            tls,
            per_ip: Buckets::default(),
            per_key: Buckets::default(),
        }
    }

    /// Answers one request: origin, rate and route checks, then the route; every answer to an
    /// allowed origin carries its CORS grant.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response {
        let config = self.intake.live.config();
        let Some(cfg) = config.intake.public.as_ref() else {
            return self
                .intake
                .unrouted(StatusCode::NOT_FOUND, "public intake is off");
        };
        add(&self.intake.counters.public.requests, 1);
        let origin = req
            .headers()
            .get(ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let Some(o) = origin
            .as_deref()
            .filter(|o| !cors::allowed(&cfg.origins, o))
        {
            add(&self.intake.counters.public.refused_origin, 1);
            let reason = format!("origin {o} is not in intake.public.origins");
            return self
                .intake
                .refused("origin", StatusCode::FORBIDDEN, &reason);
        }
        let mut resp = self.route(req, cfg, origin.as_deref()).await;
        if let Some(o) = &origin {
            cors::grant(&mut resp, o);
        }
        resp
    }

    async fn route(
        &self,
        req: Request<Incoming>,
        cfg: &PublicIntake,
        origin: Option<&str>,
    ) -> Response {
        if let Some(refused) = self.ip_refusal(&req, cfg) {
            return refused;
        }
        if req.method() == Method::OPTIONS {
            if let Some(o) = origin {
                add(&self.intake.counters.public.preflights, 1);
                return cors::preflight(o, req.headers());
            }
        }
        let path = req.uri().path().to_string();
        let route = match req.method() {
            &Method::POST | &Method::GET => route_of(&path),
            _ => None,
        };
        match (req.method(), route) {
            (&Method::POST, Some(Route::Capture(which))) => self.capture(req, which, cfg).await,
            (_, Some(Route::Flags)) => json(StatusCode::OK, &documents::posthog_flags()),
            (&Method::GET, Some(Route::PostHogConfig(key, script))) => {
                self.posthog_config(key, script)
            }
            (&Method::GET, Some(Route::SegmentSettings(key))) => {
                self.segment_settings(&req, key, cfg)
            }
            (method, _) => {
                let reason = format!("no route {method} {path} on the public intake");
                self.intake.unrouted(StatusCode::NOT_FOUND, &reason)
            }
        }
    }

    /// Takes a token from the client IP's bucket; without one, the 429 to answer.
    fn ip_refusal(&self, req: &Request<Incoming>, cfg: &PublicIntake) -> Option<Response> {
        let peer = req.extensions().get::<Peer>()?.0.ip();
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        let ip = client_ip(peer, forwarded, &cfg.trusted_proxies);
        let wait = self
            .per_ip
            .take(&ip, 1.0, cfg.per_ip, Instant::now())
            .err()?;
        add(&self.intake.counters.public.refused_ip_rate, 1);
        let reason = format!("{ip}: over intake.public.per_ip; retry later");
        let refused = self
            .intake
            .refused("ip-rate", StatusCode::TOO_MANY_REQUESTS, &reason);
        Some(too_many(refused, wait))
    }

    /// An SDK capture route, read under the public limits; the payload's key is charged its
    /// events and each event is held to `max_event_bytes`.
    async fn capture(&self, req: Request<Incoming>, which: Sdk, cfg: &PublicIntake) -> Response {
        let intake: IntakeConfig = IntakeConfig {
            max_body_bytes: cfg.max_body_bytes,
            ..self.intake.live.config().intake.clone()
        };
        let check = |payload: &Payload| self.payload_refusal(payload, cfg);
        self.intake.sdk_checked(req, which, &intake, check).await
    }

    /// The 413 or 429 to answer a payload with, if any.
    fn payload_refusal(&self, payload: &Payload, cfg: &PublicIntake) -> Option<Response> {
        let counters = &self.intake.counters.public;
        for (i, e) in payload.events.iter().enumerate() {
            let size = e.event.approx_bytes();
            if size > cfg.max_event_bytes {
                add(&counters.refused_event_size, 1);
                add(&self.intake.counters.requests_rejected, 1);
                let reason = format!(
                    "event {i}: about {size} bytes, over intake.public.max_event_bytes ({})",
                    cfg.max_event_bytes
                );
                return Some(self.intake.refused(
                    "event-size",
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &reason,
                ));
            }
        }
        let key = payload.key.clone().unwrap_or_default();
        let n = payload.events.len() as f64;
        let wait = self
            .per_key
            .take(&key, n, cfg.per_key, Instant::now())
            .err()?;
        add(&counters.refused_key_rate, 1);
        let reason = format!("key {key}: over intake.public.per_key; retry later");
        let refused = self
            .intake
            .refused("key-rate", StatusCode::TOO_MANY_REQUESTS, &reason);
        Some(too_many(refused, wait))
    }

    /// posthog-js's remote config for a configured key, as JSON or as a script.
    fn posthog_config(&self, key: &str, script: bool) -> Response {
        let config = self.intake.live.config();
        if !config.intake.posthog.keys.iter().any(|k| k == key) {
            return self.unknown_key("posthog", key);
        }
        if script {
            let js = documents::posthog_config_script(key);
            return with_type(StatusCode::OK, js, "application/javascript");
        }
        json(StatusCode::OK, &documents::posthog_config(key))
    }

    /// analytics.js's settings for a configured write key, pointing it at this intake.
    fn segment_settings(&self, req: &Request<Incoming>, key: &str, cfg: &PublicIntake) -> Response {
        let config = self.intake.live.config();
        if !config.intake.segment.keys.iter().any(|k| k == key) {
            return self.unknown_key("segment", key);
        }
        let (protocol, host) = self.reached_at(req, cfg);
        let doc = documents::segment_settings(key, &format!("{host}/v1"), &protocol);
        json(StatusCode::OK, &doc)
    }

    fn unknown_key(&self, sdk: &str, key: &str) -> Response {
        add(&self.intake.counters.public.refused_unknown_key, 1);
        let reason = format!("key {key}: not one of intake.{sdk}.keys");
        self.intake.refused(sdk, StatusCode::NOT_FOUND, &reason)
    }

    /// The scheme and `host[:port]` browsers reach this intake at: `public_url`, else the
    /// request's `Host` (with `X-Forwarded-Proto` when a trusted proxy sent it).
    fn reached_at(&self, req: &Request<Incoming>, cfg: &PublicIntake) -> (String, String) {
        if let Some(url) = &cfg.public_url {
            let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
            return (scheme.to_string(), rest.trim_end_matches('/').to_string());
        }
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        let host = header(HOST.as_str()).unwrap_or("localhost").to_string();
        let peer = req.extensions().get::<Peer>().map(|p| p.0.ip());
        let proxied = peer.is_some_and(|p| cfg.trusted_proxies.contains(&p));
        let scheme = match header("x-forwarded-proto") {
            Some(p) if proxied => p.to_string(),
            _ if self.tls => "https".to_string(),
            _ => "http".to_string(),
        };
        (scheme, host)
    }
}

/// The route `path` names on the public intake, if any.
fn route_of(path: &str) -> Option<Route<'_>> {
    if posthog::is_route(path) {
        return Some(Route::Capture(Sdk::PostHog));
    }
    if let Some(kind) = segment::route_type(path) {
        return Some(Route::Capture(Sdk::Segment(kind)));
    }
    let trimmed = path.trim_end_matches('/');
    if matches!(trimmed, "/flags" | "/decide") {
        return Some(Route::Flags);
    }
    if let Some(rest) = trimmed.strip_prefix("/array/") {
        let (key, file) = rest.split_once('/')?;
        return match file {
            "config" => Some(Route::PostHogConfig(key, false)),
            "config.js" => Some(Route::PostHogConfig(key, true)),
            _ => None,
        };
    }
    let key = trimmed
        .strip_prefix("/v1/projects/")?
        .strip_suffix("/settings")?;
    (!key.contains('/')).then_some(Route::SegmentSettings(key))
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the last address in
/// `X-Forwarded-For` that is not a trusted proxy.
pub fn client_ip(peer: IpAddr, forwarded: Option<&str>, trusted: &[IpAddr]) -> IpAddr {
    let mut ip = peer;
    if !trusted.contains(&peer) {
        return ip;
    }
    for hop in forwarded.unwrap_or_default().rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(a) => {
                ip = a;
                if !trusted.contains(&a) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    ip
}

/// A 429 with `Retry-After` in whole seconds (at least 1).
fn too_many(mut resp: Response, wait: std::time::Duration) -> Response {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(RETRY_AFTER, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let trusted = [proxy];
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(client_ip(client, Some("1.2.3.4"), &trusted), client);
        assert_eq!(
            client_ip(proxy, Some("1.2.3.4, 203.0.113.7"), &trusted),
            client,
            "the hop the proxy added, not the one the client wrote"
        );
        assert_eq!(
            client_ip(proxy, Some("203.0.113.7, 10.0.0.1"), &trusted),
            client
        );
        assert_eq!(client_ip(proxy, None, &trusted), proxy);
    }

    #[test]
    fn only_the_sdk_routes_and_their_documents_are_routed() {
        let name = |p: &str| match route_of(p) {
            Some(Route::Capture(s)) => s.name().to_string(),
            Some(Route::Flags) => "flags".into(),
            Some(Route::PostHogConfig(k, js)) => format!("config {k} {js}"),
            Some(Route::SegmentSettings(k)) => format!("settings {k}"),
            None => "none".into(),
        };
        assert_eq!(name("/e/"), "posthog");
        assert_eq!(name("/v1/t"), "segment");
        assert_eq!(name("/flags/"), "flags");
        assert_eq!(name("/decide/"), "flags");
        assert_eq!(name("/array/phc_1/config.js"), "config phc_1 true");
        assert_eq!(name("/array/phc_1/config"), "config phc_1 false");
        assert_eq!(name("/v1/projects/wk/settings"), "settings wk");
        for p in [
            "/healthz",
            "/metrics",
            "/v1/events",
            "/array/x/y",
            "/v1/projects/a/b/settings",
        ] {
            assert_eq!(name(p), "none", "{p}");
        }
    }
}
