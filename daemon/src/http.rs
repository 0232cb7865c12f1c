//! The hyper HTTP/1 serving loop and JSON responses shared by the agent intake and the collector API.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use rustls::ServerConfig;
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

/// The body of every response: a whole buffer, or a stream (server-sent events, exports).
/// A stream that fails sends an error: the connection is then closed without the chunked
/// body's end, so the client sees a broken transfer, never a short body that looks whole.
pub type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// One piece of a streamed body: bytes, or the error that ends it (see [`Body`]).
pub type Chunk = Result<Bytes, std::io::Error>;

/// The response type every handler returns.
pub type Response = hyper::Response<Body>;

/// How long a client may take to send its request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send a request body (see [`read_body_within`]).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long in-flight requests may take to finish once shutdown begins.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// The TLS settings for the next connection (read per connection, so a reload that replaces
/// them applies to the next handshake); `None` serves plain HTTP.
pub type TlsSource = Arc<dyn Fn() -> Option<Arc<ServerConfig>> + Send + Sync>;

/// The address a request's connection came from, in the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// How a listener takes connections.
#[derive(Clone)]
pub struct Listening {
    /// TLS for each new connection.
    pub tls: TlsSource,
    /// Connections served at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// What the listener counts, for `/metrics`.
    pub counters: Arc<ServerCounters>,
}

/// A listener's connection counters.
#[derive(Debug, Default)]
pub struct ServerCounters {
    /// Connections accepted (those refused at the cap included).
    pub accepted: AtomicU64,
    /// Connections answered 503 because `max_connections` were open.
    pub refused_at_cap: AtomicU64,
    /// TLS handshakes that failed or timed out.
    pub tls_handshake_failures: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
}

impl ServerCounters {
    /// Writes the counters as `PREFIX_connections_*` families.
    pub fn expose(&self, e: &mut crate::metrics::Exposition, prefix: &str) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let name = |s: &str| format!("{prefix}_{s}");
        e.counter(
            &name("connections_accepted_total"),
            "Connections accepted.",
            get(&self.accepted),
        );
        e.counter(
            &name("connections_refused_total"),
            "Connections answered 503 because the connection cap was reached.",
            get(&self.refused_at_cap),
        );
        e.counter(
            &name("tls_handshake_failures_total"),
            "TLS handshakes that failed or timed out.",
            get(&self.tls_handshake_failures),
        );
        e.gauge(
            &name("connections_open"),
            "Connections open now.",
            get(&self.open) as f64,
        );
    }
}

impl Listening {
    /// Plain HTTP with at most `max_connections` connections.
    pub fn plain(max_connections: usize) -> Self {
        Listening {
            tls: Arc::new(|| None),
            max_connections,
            counters: Arc::default(),
        }
    }
}

/// Accepts connections until `shutdown` completes, answering each request with `handler`; then
/// stops accepting and lets in-flight requests finish, for at most [`SHUTDOWN_DEADLINE`].
pub async fn serve<H, F>(
    listener: TcpListener,
    listening: Listening,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(listening.max_connections));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let permit = open.clone().try_acquire_owned().ok();
        let counters = listening.counters.clone();
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        if permit.is_none() {
            counters.refused_at_cap.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, limit = listening.max_connections, "connection refused at the cap");
        }
        let connection = Connection {
            tls: (listening.tls)(),
            watcher: graceful.watcher(),
            cap: listening.max_connections,
            counters,
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            connection.counters.open.fetch_add(1, Ordering::Relaxed);
            let counters = connection.counters.clone();
            connection.run(stream, peer, permit, handler).await;
            counters.open.fetch_sub(1, Ordering::Relaxed);
            // The permit, if any, is released here, when the connection has ended.
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_DEADLINE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            deadline_s = SHUTDOWN_DEADLINE.as_secs(),
            "in-flight requests cut at the shutdown deadline"
        );
    }
}

/// One accepted connection: its TLS settings and the shutdown it follows.
struct Connection {
    tls: Option<Arc<ServerConfig>>,
    watcher: Watcher,
    cap: usize,
    counters: Arc<ServerCounters>,
}

impl Connection {
    async fn run<H, F>(
        self,
        stream: TcpStream,
        peer: SocketAddr,
        permit: Option<OwnedSemaphorePermit>,
        handler: H,
    ) where
        H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response> + Send + 'static,
    {
        let Some(tls) = self.tls.clone() else {
            return self.http(TokioIo::new(stream), peer, permit, handler).await;
        };
        let handshake = TlsAcceptor::from(tls).accept(stream);
        let failed = match tokio::time::timeout(HEADER_READ_TIMEOUT, handshake).await {
            Ok(Ok(stream)) => return self.http(TokioIo::new(stream), peer, permit, handler).await,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_string(),
        };
        tracing::info!(%peer, error = %failed, "TLS handshake failed");
        self.counters
            .tls_handshake_failures
            .fetch_add(1, Ordering::Relaxed);
    }

    async fn http<I, H, F>(
        self,
        io: TokioIo<I>,
        peer: SocketAddr,
        permit: Option<OwnedSemaphorePermit>,
        handler: H,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response> + Send + 'static,
    {
        let cap = self.cap;
        let over_cap = permit.is_none();
        let service = service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(Peer(peer));
            let handler = handler.clone();
            async move {
                if over_cap {
                    let message = format!("connection limit ({cap}) reached; retry shortly");
                    let refusal = Refusal::new(StatusCode::SERVICE_UNAVAILABLE, message);
                    return Ok::<_, Infallible>(hardened(refusal.retry_after(1).response()));
                }
                Ok(hardened(handler(req).await))
            }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .keep_alive(!over_cap)
            .serve_connection(io, service);
        if let Err(e) = self.watcher.watch(conn).await {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
        drop(permit);
    }
}

/// A JSON response with the given status.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => with_type(status, body, "application/json"),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("encoding response: {e}"),
        ),
    }
}

/// `{"error": message}` with the given status.
pub fn error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    with_type(status, body.into_bytes(), "application/json")
}

/// The Content-Security-Policy of pages that run only their own scripts and styles (the
/// dashboard): nothing inline, nothing from elsewhere, never framed.
pub const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The Content-Security-Policy of documents that run no script (reports): their own inline
/// styles and images only.
pub const DOCUMENT_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Adds the headers every response carries unless its handler set them: no content sniffing,
/// no referrer, no framing, and (for HTML without a policy of its own) the document policy.
pub fn hardened(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    let html = h
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html"));
    let defaults: [(&str, &'static str); 4] = [
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        (
            "content-security-policy",
            if html {
                DOCUMENT_POLICY
            } else {
                "default-src 'none'; frame-ancestors 'none'"
            },
        ),
    ];
    for (name, value) in defaults {
        if !h.contains_key(name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    }
    resp
}

/// A response with a body and a content type.
pub fn with_type(
    status: StatusCode,
    body: impl Into<Bytes>,
    content_type: &'static str,
) -> Response {
    let mut resp = hyper::Response::new(
        Full::new(body.into())
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A body fed from a channel: each chunk is sent as it comes; the body ends when every
/// sender is gone, or breaks at an error chunk.
struct Channel(tokio::sync::mpsc::Receiver<Chunk>);

impl hyper::body::Body for Channel {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|m| m.map(|c| c.map(hyper::body::Frame::data)))
    }
}

/// A streaming `200` response of `content_type` whose chunks come from `rx`.
pub fn stream(rx: tokio::sync::mpsc::Receiver<Chunk>, content_type: &'static str) -> Response {
    let mut resp = hyper::Response::new(BodyExt::boxed(Channel(rx)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-cache"));
    resp
}

/// A refused request: the status and the message of its `{"error": …}` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The 4xx or 5xx status.
    pub status: StatusCode,
    /// What is wrong, naming the field or limit.
    pub message: String,
    /// Seconds to wait before retrying, when the refusal says (else 429 says 1, 507 says 60).
    pub retry_after: Option<u64>,
}

impl Refusal {
    /// A refusal with a status and a message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same refusal, telling the client to retry after `secs` seconds.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The answer: `{"error": message}`, with a bearer challenge on 401, `Retry-After: 1` on 429
    /// and `Retry-After: 60` on 507 (storage full: it takes longer to clear); on 408 and 413,
    /// whose body was not read to its end, `Connection: close`, so no client sends its next
    /// request on a connection the server is closing.
    pub fn response(&self) -> Response {
        let mut resp = error(self.status, &self.message);
        close_if_body_unread(&mut resp);
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        let wait = match self.status {
            StatusCode::TOO_MANY_REQUESTS => Some(self.retry_after.unwrap_or(1)),
            StatusCode::INSUFFICIENT_STORAGE => Some(self.retry_after.unwrap_or(60)),
            _ => self.retry_after,
        };
        if let Some(secs) = wait {
            resp.headers_mut()
                .insert(hyper::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// Marks a 408 or 413 answer `Connection: close`: the request's body was not read to its end,
/// so the connection cannot carry another request, and a client must not send one on it.
pub fn close_if_body_unread(resp: &mut Response) {
    if matches!(
        resp.status(),
        StatusCode::REQUEST_TIMEOUT | StatusCode::PAYLOAD_TOO_LARGE
    ) {
        resp.headers_mut()
            .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    }
}

/// Reads a whole request body, or refuses with 413 when it is larger than `limit` bytes.
pub async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, Refusal> {
    read_body_within(req, limit, BODY_READ_TIMEOUT).await
}

/// [`read_body`] with its own deadline for the whole body: a client that sends it slower gets
/// 408 (a slowloris sending its body a byte at a time holds a connection no longer).
pub async fn read_body_within(
    req: Request<Incoming>,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, Refusal> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let collecting = Limited::new(req.into_body(), limit).collect();
    let Ok(collected) = tokio::time::timeout(deadline, collecting).await else {
        let message = format!(
            "request body not received within {} s",
            deadline.as_secs_f64()
        );
        return Err(Refusal::new(StatusCode::REQUEST_TIMEOUT, message));
    };
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(limit)),
        Err(e) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("reading body: {e}"),
        )),
    }
}

fn too_large(limit: usize) -> Refusal {
    Refusal::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("body exceeds the limit of {limit} bytes"),
    )
}

/// The decoded query parameters of a request.
pub fn query<B>(req: &Request<B>) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// The bearer token of a request, if it has one.
pub fn bearer<B>(req: &Request<B>) -> Option<&str> {
    req.headers()
        .get(hyper::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_of_an_unread_body_closes_the_connection() {
        let close = |status| {
            Refusal::new(status, "x")
                .response()
                .headers()
                .get(hyper::header::CONNECTION)
                .map(|v| v.to_str().unwrap().to_string())
        };
        assert_eq!(
            close(StatusCode::PAYLOAD_TOO_LARGE).as_deref(),
            Some("close")
        );
        assert_eq!(close(StatusCode::REQUEST_TIMEOUT).as_deref(), Some("close"));
        assert_eq!(
            close(StatusCode::BAD_REQUEST),
            None,
            "a read body keeps the connection"
        );
    }
}
