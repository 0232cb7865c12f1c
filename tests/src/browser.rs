//! A real headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`):
//! open pages, run scripts, wait on page conditions, drag the pointer, read the browser console
//! and save screenshots.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// Where the Debian packages put the browser and its driver.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// See [`CHROMIUM`].
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A browser session.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    client: reqwest::blocking::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium window of 1280 x 900.
    pub fn start() -> Browser {
        Browser::start_with(&[])
    }

    /// [`Browser::start`] as a visitor's browser: without the headless user agent and the
    /// `navigator.webdriver` flag, which analytics SDKs take for a bot and send nothing from.
    pub fn start_as_visitor() -> Browser {
        Browser::start_with(&[
            "--user-agent=Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/156.0.0.0 Safari/537.36",
            "--disable-blink-features=AutomationControlled",
        ])
    }

    /// [`Browser::start`] with more Chromium arguments.
    pub fn start_with(extra: &[&str]) -> Browser {
        for p in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(p).exists(),
                "{p} is missing: apt-get install chromium chromium-driver (.ci/run does)"
            );
        }
        let port = crate::free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let client = tda_daemon::tls::blocking_client_builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        crate::wait_for("chromedriver ready", || {
            let v: Value = client
                .get(format!("{base}/status"))
                .send()
                .ok()?
                .json()
                .ok()?;
            v["value"]["ready"].as_bool().filter(|r| *r)
        });
        let profile = tempfile::tempdir().expect("profile dir");
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
        ];
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.extend(extra.iter().map(|a| a.to_string()));
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"}}}});
        let v: Value = client
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .expect("new session")
            .json()
            .expect("session JSON");
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        Browser {
            driver,
            base,
            session,
            client,
            _profile: profile,
        }
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let v: Value = self
            .client
            .request(method, &url)
            .json(&body)
            .send()
            .unwrap_or_else(|e| panic!("{url}: {e}"))
            .json()
            .expect("WebDriver JSON");
        if v["value"]["error"].is_string() {
            panic!("{path}: {}", v["value"]);
        }
        v["value"].clone()
    }

    /// Opens a URL.
    pub fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub fn eval(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
    }

    /// Waits until `expr` (a JavaScript expression) is truthy; returns its value.
    pub fn wait(&self, what: &str, expr: &str) -> Value {
        let script = format!("return ({expr}) || null;");
        crate::wait_for(what, || {
            let v = self.eval(&script, json!([]));
            (!v.is_null() && v != json!(false)).then_some(v)
        })
    }

    /// Console messages at level SEVERE since the last call (errors, failed requests).
    pub fn console_errors(&self) -> Vec<String> {
        let logs = self.call(reqwest::Method::POST, "/se/log", json!({"type": "browser"}));
        logs.as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or("").to_string())
            .collect()
    }

    /// Drags the mouse across the element matched by `css`, from `from` to `to` (fractions
    /// of its width, at half its height).
    pub fn drag_across(&self, css: &str, from: f64, to: f64) {
        let el = self.call(
            reqwest::Method::POST,
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        let id = el
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("element id")
            .to_string();
        let rect = self.call(
            reqwest::Method::GET,
            &format!("/element/{id}/rect"),
            json!({}),
        );
        let w = rect["width"].as_f64().unwrap_or(0.0);
        let origin = json!({"element-6066-11e4-a52e-4f735466cecf": id});
        let at = |f: f64| ((f - 0.5) * w) as i64;
        let actions = json!({"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": [
            {"type": "pointerMove", "duration": 0, "origin": origin, "x": at(from), "y": 0},
            {"type": "pointerDown", "button": 0},
            {"type": "pointerMove", "duration": 200, "origin": origin, "x": at((from + to) / 2.0), "y": 0},
            {"type": "pointerMove", "duration": 200, "origin": origin, "x": at(to), "y": 0},
            {"type": "pointerUp", "button": 0}
        ]}]});
        self.call(reqwest::Method::POST, "/actions", actions);
    }

    /// Saves a PNG screenshot of the window to `path`.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let b64 = self.call(reqwest::Method::GET, "/screenshot", json!({}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or(""))
            .expect("PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self
            .client
            .delete(format!("{}/session/{}", self.base, self.session))
            .send();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where tests save screenshots: `target/test-artifacts/<name>/`.
pub fn artifacts(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let target = exe
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "target"))
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    target.join("test-artifacts").join(name)
}
