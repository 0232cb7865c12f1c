//! The local HTTP intake: `POST /v1/events` takes a JSON array of usage events; the PostHog and
//! Segment routes take those SDKs' payloads; `GET /healthz` reports the agent's counters and the
//! settings in force; `GET /metrics` the same for Prometheus.

use std::sync::{Arc, Mutex};

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use tda_daemon::{error, json, read_body, Response};
use tda_schema::config::IntakeAck;
use tda_schema::wire::decode_events;
use tda_schema::Event;
use tokio::sync::{mpsc, oneshot};

use crate::batch::Record;
use crate::counters::{add, Counters};
use crate::refusals::RefusalLog;
use crate::sdk::{self, posthog, segment, Identities, Recent, Sdk};
use crate::settings::Live;
use crate::spool::Spool;

/// What the intake handlers share.
pub struct Intake {
    /// Where accepted events go.
    pub records: mpsc::Sender<Record>,
    /// The agent's counters.
    pub counters: Arc<Counters>,
    /// The live settings (id, intake limit, sampling), reported on `/healthz`.
    pub live: Arc<Live>,
    /// The spool, to refuse events while it is full under `refuse_intake`.
    pub spool: Arc<Spool>,
    /// The listener's connection counters.
    pub connections: Arc<tda_daemon::http::ServerCounters>,
    /// The public listener's connection counters.
    pub public_connections: Arc<tda_daemon::http::ServerCounters>,
    /// What the SDK intakes remember between requests.
    pub sdk: SdkMemory,
    /// Refused requests in the log, a line per kind a minute.
    pub refusals: RefusalLog,
}

/// Event ids seen lately and identity links, shared by the PostHog and Segment intakes.
pub struct SdkMemory {
    pub(crate) recent: Mutex<Recent>,
    pub(crate) identities: Mutex<Identities>,
}

impl Default for SdkMemory {
    fn default() -> Self {
        SdkMemory {
            recent: Mutex::new(Recent::new(sdk::recent::RECENT_IDS)),
            identities: Mutex::new(Identities::new(sdk::recent::IDENTITIES)),
        }
    }
}

impl Intake {
    /// Routes one request.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response {
        match (req.method(), req.uri().path()) {
            (&Method::POST, "/v1/events") => self.events(req).await,
            (&Method::GET, "/metrics") => crate::metrics::render(&self),
            (&Method::POST, p) if posthog::is_route(p) => self.sdk(req, Sdk::PostHog).await,
            (&Method::POST, p) if segment::route_type(p).is_some() => {
                let kind = segment::route_type(p).unwrap_or("batch");
                self.sdk(req, Sdk::Segment(kind)).await
            }
            (&Method::GET, "/healthz") => json(
                StatusCode::OK,
                &serde_json::json!({
                    "status": "ok",
                    "agent_id": self.live.agent_id(),
                    "counters": self.counters.snapshot(),
                    "public": self.live.config().intake.public.is_some()
                        .then(|| self.counters.public.snapshot()),
                    "sampling": *self.live.sampling().borrow(),
                    "collector": self.live.target().url,
                    "config": self.live.status(),
                }),
            ),
            (method, "/v1/events" | "/healthz" | "/metrics") => {
                let reason = format!("method {method} not allowed");
                self.unrouted(StatusCode::METHOD_NOT_ALLOWED, &reason)
            }
            (method, path) => {
                let reason = format!("no route {method} {path}");
                self.unrouted(StatusCode::NOT_FOUND, &reason)
            }
        }
    }

    /// Notes a refused request (counted by the caller) in the log, and answers it.
    pub(crate) fn refused(&self, kind: &str, status: StatusCode, reason: &str) -> Response {
        self.refusals
            .note(kind, status.as_u16(), reason, std::time::Instant::now());
        let mut resp = error(status, reason);
        tda_daemon::http::close_if_body_unread(&mut resp);
        resp
    }

    /// A request to no route, a wrong method or a disabled intake: counted, logged, answered.
    pub(crate) fn unrouted(&self, status: StatusCode, reason: &str) -> Response {
        add(&self.counters.requests_unrouted, 1);
        self.refused("route", status, reason)
    }

    /// `503` while the spool is full under `refuse_intake`.
    pub(crate) fn refusal(&self) -> Option<Response> {
        if !self.spool.refusing() {
            return None;
        }
        add(&self.counters.intake_refused, 1);
        let mut resp = self.refused(
            "spool",
            StatusCode::SERVICE_UNAVAILABLE,
            "spool full: the collector is behind; retry later",
        );
        resp.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_static("5"),
        );
        Some(resp)
    }

    async fn events(&self, req: Request<Incoming>) -> Response {
        if let Some(refused) = self.refusal() {
            return refused;
        }
        let body = match read_body(req, self.live.intake_limit()).await {
            Ok(b) => b,
            Err(refusal) => {
                add(&self.counters.requests_rejected, 1);
                let (status, reason) = (refusal.status.as_u16(), refusal.message.clone());
                self.refusals
                    .note("events", status, &reason, std::time::Instant::now());
                return refusal.response();
            }
        };
        let events = match decode_events(&body) {
            Ok(e) => e,
            Err(e) => {
                add(&self.counters.requests_rejected, 1);
                return self.refused("events", StatusCode::BAD_REQUEST, &e.to_string());
            }
        };
        let n = events.len();
        if let Err(refused) = self.hand_over(events).await {
            return refused;
        }
        add(&self.counters.events_received, n as u64);
        json(StatusCode::ACCEPTED, &serde_json::json!({ "accepted": n }))
    }

    /// Hands events to the batcher; with `intake.ack = "durable"`, returns once they are on
    /// disk. The error is the answer to give instead.
    pub(crate) async fn hand_over(&self, events: Vec<Event>) -> Result<(), Response> {
        if events.is_empty() {
            return Ok(());
        }
        let durable = self.live.config().intake.ack == IntakeAck::Durable;
        let (ack, written) = if durable {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        if self
            .records
            .send(Record::Events(events, ack))
            .await
            .is_err()
        {
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "agent is shutting down",
            ));
        }
        match written {
            None => Ok(()),
            Some(rx) => match rx.await {
                Ok(true) => Ok(()),
                _ => Err(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the events could not be written to disk; retry later",
                )),
            },
        }
    }
}
