//! The PostHog and Segment routes of the intake: read (and gunzip) the body, translate it,
//! apply identity links, drop repeated event ids, hand the events to the batcher.

use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_ENCODING};
use hyper::{Request, StatusCode};
use tda_daemon::{json, query, read_body, Response};
use tda_schema::timestamp::now_ms;

use super::{decode, Payload, Received, Sdk, SdkError};
use crate::counters::add;
use crate::intake::Intake;

impl Intake {
    /// `POST` on a PostHog or Segment route of the local intake.
    pub(crate) async fn sdk(&self, req: Request<Incoming>, which: Sdk) -> Response {
        let config = self.live.config();
        self.sdk_checked(req, which, &config.intake, |_| None).await
    }

    /// `POST` on a PostHog or Segment route, read under `cfg`'s limits; `check` may refuse a
    /// decoded payload (the public intake's key rate and event size) with the answer to give.
    pub(crate) async fn sdk_checked(
        &self,
        req: Request<Incoming>,
        which: Sdk,
        cfg: &tda_schema::config::IntakeConfig,
        check: impl FnOnce(&Payload) -> Option<Response>,
    ) -> Response {
        let enabled = match which {
            Sdk::PostHog => cfg.posthog.enabled,
            Sdk::Segment(_) => cfg.segment.enabled,
        };
        if !enabled {
            let path = req.uri().path().to_string();
            return self.unrouted(
                StatusCode::NOT_FOUND,
                &format!("no route {path} (this SDK intake is disabled)"),
            );
        }
        if let Some(refused) = self.refusal() {
            return refused;
        }
        match self.translate(req, which, cfg).await {
            Ok(payload) => match check(&payload) {
                None => self.take(payload, which).await,
                Some(refused) => refused,
            },
            Err(e) => {
                add(&self.counters.requests_rejected, 1);
                let status = match e {
                    SdkError::Invalid(_) => StatusCode::BAD_REQUEST,
                    SdkError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
                    SdkError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                };
                self.refused(which.name(), status, &e.to_string())
            }
        }
    }

    async fn translate(
        &self,
        req: Request<Incoming>,
        which: Sdk,
        cfg: &tda_schema::config::IntakeConfig,
    ) -> Result<Payload, SdkError> {
        let q = query(&req);
        let header = |name| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let gzip = header(CONTENT_ENCODING).is_some_and(|e| e.eq_ignore_ascii_case("gzip"))
            || q.get("compression").is_some_and(|c| c.starts_with("gzip"));
        let auth = header(AUTHORIZATION);
        let body = read_body(req, cfg.max_body_bytes)
            .await
            .map_err(|r| match r.status {
                StatusCode::PAYLOAD_TOO_LARGE => SdkError::TooLarge(r.message.clone()),
                _ => SdkError::Invalid(r.message.clone()),
            })?;
        let got = Received {
            body: &body,
            gzip,
            base64: q.get("compression").is_some_and(|c| c == "base64"),
            authorization: auth.as_deref(),
            query_key: q
                .get("api_key")
                .or_else(|| q.get("token"))
                .map(String::as_str),
        };
        decode(which, &got, cfg, now_ms())
    }

    /// Links ids, maps user ids, drops repeats, queues the rest; answers as the SDK expects.
    async fn take(&self, payload: Payload, which: Sdk) -> Response {
        let mut events = Vec::with_capacity(payload.events.len());
        let mut ids = Vec::new();
        {
            let mut identities = self
                .sdk
                .identities
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for (anonymous, user) in &payload.links {
                identities.link(anonymous, user);
            }
            let mut recent = self.sdk.recent.lock().unwrap_or_else(|p| p.into_inner());
            for mut incoming in payload.events {
                if let Some(id) = incoming.id {
                    if !recent.first_time(&id) {
                        add(&self.counters.events_deduplicated, 1);
                        continue;
                    }
                    ids.push(id);
                }
                incoming.event.user_id = identities.user_of(&incoming.event.user_id).to_string();
                events.push(incoming.event);
            }
        }
        let n = events.len();
        if let Err(refused) = self.hand_over(events).await {
            self.sdk
                .recent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .forget(&ids);
            return refused;
        }
        add(&self.counters.events_received, n as u64);
        match which {
            Sdk::PostHog => json(StatusCode::OK, &serde_json::json!({ "status": 1 })),
            Sdk::Segment(_) => json(StatusCode::OK, &serde_json::json!({ "success": true })),
        }
    }
}
