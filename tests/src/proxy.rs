//! A TCP proxy between an agent and a collector that injects network faults: connections reset
//! before any byte, requests cut halfway, responses delayed, and responses cut after the
//! collector has answered (so the batch is stored but the agent never hears it). A real proxy on
//! loopback stands in for a bad network, which cannot be produced for real here.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the proxy does to one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward one request and its response untouched (then close).
    Pass,
    /// Close the client's connection before forwarding anything.
    Reset,
    /// Forward part of the request, then close both sides.
    CutRequest,
    /// Hold each response back for a while.
    Delay(Duration),
    /// Forward the request, swallow the response, then close (the batch is stored; the agent
    /// sees a broken connection and retries).
    CutResponse,
}

/// Counts of what the proxy did.
#[derive(Debug, Default)]
pub struct ProxyCounts {
    /// Connections per fault: pass, reset, cut request, delay, cut response.
    pub by_fault: [AtomicU64; 5],
}

/// A running proxy; it stops accepting when dropped.
pub struct Proxy {
    /// Base URL agents should use.
    pub url: String,
    /// What it did.
    pub counts: Arc<ProxyCounts>,
    stop: Arc<AtomicBool>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn index(f: Fault) -> usize {
    match f {
        Fault::Pass => 0,
        Fault::Reset => 1,
        Fault::CutRequest => 2,
        Fault::Delay(_) => 3,
        Fault::CutResponse => 4,
    }
}

impl Proxy {
    /// Proxies to `target` (host:port); connection `n` gets `plan(n)`.
    pub fn start(target: String, plan: impl Fn(u64) -> Fault + Send + Sync + 'static) -> Proxy {
        Proxy::start_reading(target, move |n, _| plan(n))
    }

    /// Proxies to `target`; connection `n` gets `plan(n, first)`, where `first` is the first
    /// bytes the client sent on it (its request line and headers, at least in part).
    pub fn start_reading(
        target: String,
        plan: impl Fn(u64, &[u8]) -> Fault + Send + Sync + 'static,
    ) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        listener.set_nonblocking(true).expect("nonblocking");
        let counts = Arc::new(ProxyCounts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (counts.clone(), stop.clone());
        let plan = Arc::new(plan);
        std::thread::spawn(move || {
            let mut n = 0;
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let (target, plan, c) = (target.clone(), plan.clone(), c.clone());
                        std::thread::spawn(move || {
                            handle(client, &target, |first| {
                                let fault = plan(n, first);
                                c.by_fault[index(fault)].fetch_add(1, Ordering::Relaxed);
                                fault
                            })
                        });
                        n += 1;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy { url, counts, stop }
    }
}

fn handle(mut client: TcpStream, target: &str, plan: impl FnOnce(&[u8]) -> Fault) {
    let _ = client.set_nonblocking(false);
    let mut first = vec![0u8; 16 * 1024];
    let n = client.read(&mut first).unwrap_or(0);
    first.truncate(n);
    let fault = plan(&first);
    if fault == Fault::Reset || n == 0 {
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let Ok(mut server) = TcpStream::connect(target) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let part = if fault == Fault::CutRequest { n / 2 } else { n };
    if server.write_all(&first[..part]).is_err() || fault == Fault::CutRequest {
        let _ = server.shutdown(Shutdown::Both);
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let (mut c_read, mut s_write) = (
        client.try_clone().expect("clone"),
        server.try_clone().expect("clone"),
    );
    // Only the first request goes upstream: a client that reuses the connection for the next
    // one before it sees the close must not hand the server half a request.
    let mut left = request_len(&first).map(|len| len.saturating_sub(part));
    let upstream = std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while left != Some(0) {
            let want = left.map_or(buf.len(), |l| l.min(buf.len()));
            let n = match c_read.read(&mut buf[..want]) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if s_write.write_all(&buf[..n]).is_err() {
                break;
            }
            left = left.map(|l| l - n);
        }
        if left != Some(0) {
            // The client went away (or the request's length is unknown): so does the server.
            let _ = s_write.shutdown(Shutdown::Both);
            let _ = c_read.shutdown(Shutdown::Both);
        }
    });
    // One response per connection, so every request gets a new connection and a new fault
    // (clients reuse connections; a long-lived good one would hide the faults).
    let (mut s_read, mut c_write) = (server, client);
    let mut buf = [0u8; 16 * 1024];
    if let Ok(n @ 1..) = s_read.read(&mut buf) {
        if let Fault::Delay(d) = fault {
            std::thread::sleep(d);
        }
        if fault != Fault::CutResponse {
            let _ = c_write.write_all(&buf[..n]);
        }
    }
    let _ = c_write.shutdown(Shutdown::Both);
    let _ = s_read.shutdown(Shutdown::Both);
    let _ = upstream.join();
}

/// The length of the request that `first` begins (head and `Content-Length` body), when its
/// head is whole in `first` and says the body's length.
fn request_len(first: &[u8]) -> Option<usize> {
    let end = first.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&first[..end]).ok()?;
    let body = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    })?;
    Some(end + body)
}
