//! A real HTTP receiver for webhook tests: listens on a port, records every request (headers and
//! body) and answers with a status the test sets; it can be stopped and started again on the
//! same port to play a receiver that is down.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request received.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived.
    pub at: Instant,
    /// Request line path.
    pub path: String,
    /// Headers, names lowercased.
    pub headers: BTreeMap<String, String>,
    /// Body.
    pub body: String,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A running (or stopped) receiver.
pub struct Receiver {
    /// Its port.
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    /// Starts on a free port.
    pub fn start() -> Receiver {
        Self::on(crate::free_port())
    }

    /// A receiver for `port` that is not listening yet (see [`Receiver::resume`]).
    pub fn stopped(port: u16) -> Receiver {
        Receiver {
            port,
            received: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            stop: Arc::new(AtomicBool::new(true)),
            thread: None,
        }
    }

    fn on(port: u16) -> Receiver {
        let mut r = Self::stopped(port);
        r.resume();
        r
    }

    /// The URL of `path` on it.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Answers `status` from now on.
    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Starts listening (again).
    pub fn resume(&mut self) {
        self.pause();
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], self.port)))
            .expect("bind receiver");
        listener.set_nonblocking(true).expect("nonblocking");
        self.stop.store(false, Ordering::SeqCst);
        let (received, status, stop) = (
            self.received.clone(),
            self.status.clone(),
            self.stop.clone(),
        );
        self.thread = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => serve(stream, &received, status.load(Ordering::SeqCst)),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }));
    }

    /// Stops listening (connections are refused until [`Receiver::resume`]).
    pub fn pause(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("received").clone()
    }

    /// Waits (up to the harness deadline) until `n` requests have arrived; returns them all.
    pub fn wait_for(&self, n: usize) -> Vec<Received> {
        crate::wait_for(&format!("{n} request(s) at the receiver"), || {
            let got = self.received();
            (got.len() >= n).then_some(got)
        })
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.pause();
    }
}

fn serve(stream: TcpStream, received: &Mutex<Vec<Received>>, status: u16) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    received.lock().expect("received").push(Received {
        at: Instant::now(),
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\ncontent-type: application/json\r\n\r\n{{}}"
    );
}
