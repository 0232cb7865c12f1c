//! A static web server on loopback for the browser tests: the pages and the SDK bundles a site
//! would serve, on an origin of their own (not the intake's).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the server serves: exact paths, and directories under a path prefix.
#[derive(Default)]
pub struct Site {
    files: HashMap<String, (&'static str, Vec<u8>)>,
    dirs: Vec<(String, PathBuf)>,
}

impl Site {
    /// Serves `body` at `path` as `content_type`.
    pub fn page(
        mut self,
        path: &str,
        content_type: &'static str,
        body: impl Into<Vec<u8>>,
    ) -> Self {
        self.files
            .insert(path.to_string(), (content_type, body.into()));
        self
    }

    /// Serves the files of `dir` under `prefix` (`/bundles/`).
    pub fn dir(mut self, prefix: &str, dir: &Path) -> Self {
        self.dirs.push((prefix.to_string(), dir.to_path_buf()));
        self
    }

    /// Starts serving on loopback `port` (0: a free one); answers `http://127.0.0.1:PORT`.
    /// The server lives as long as the test process.
    pub fn serve_on(self, port: u16) -> String {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("page server bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let site = Arc::new(self);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let site = site.clone();
                std::thread::spawn(move || site.answer(stream));
            }
        });
        url
    }

    fn answer(&self, stream: TcpStream) {
        let mut reader = BufReader::new(match stream.try_clone() {
            Ok(s) => s,
            Err(_) => return,
        });
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return;
        }
        // The headers, unread: a GET has no body.
        loop {
            let mut h = String::new();
            match reader.read_line(&mut h) {
                Ok(0) | Err(_) => break,
                Ok(_) if h == "\r\n" => break,
                Ok(_) => {}
            }
        }
        let target = line.split(' ').nth(1).unwrap_or("/");
        let path = target.split('?').next().unwrap_or("/");
        let (status, content_type, body) = match self.find(path) {
            Some((t, b)) => ("200 OK", t, b),
            None => ("404 Not Found", "text/plain", b"not found".to_vec()),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
             cache-control: no-store\r\nconnection: close\r\n\r\n",
            body.len()
        );
        let mut stream = stream;
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(&body);
    }

    fn find(&self, path: &str) -> Option<(&'static str, Vec<u8>)> {
        if let Some((t, b)) = self.files.get(path) {
            return Some((t, b.clone()));
        }
        let (prefix, dir) = self.dirs.iter().find(|(p, _)| path.starts_with(p))?;
        let name = &path[prefix.len()..];
        if name.contains("..") {
            return None;
        }
        let body = std::fs::read(dir.join(name)).ok()?;
        let t = if name.ends_with(".js") {
            "application/javascript"
        } else {
            "application/octet-stream"
        };
        Some((t, body))
    }
}

/// The browser SDKs' `node_modules` (`TDA_TEST_NODE_MODULES`, else `target/test-npm`, which
/// `scripts/test-npm` fills).
pub fn node_modules() -> PathBuf {
    let dir = std::env::var_os("TDA_TEST_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-npm/node_modules")
        });
    assert!(
        dir.join("posthog-js").is_dir(),
        "{} has no posthog-js: run scripts/test-npm (scripts/test does)",
        dir.display()
    );
    dir
}
