//! Test harness: starts the real `tda-collector` and `tda-agent` binaries on free ports with
//! temporary directories and TOML files, and waits on conditions with deadlines.

#![forbid(unsafe_code)]

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod alerting;
pub mod bench;
pub mod browser;
pub mod pages;
pub mod pki;
pub mod proxy;
pub mod python;
pub mod receiver;
pub mod scrape;
pub mod traffic;

/// The token the harness's collectors accept and its agents send.
pub const TOKEN: &str = "test-ingest-token";
/// The token the harness's collectors accept for administration (`POST /-/reload`).
pub const ADMIN_TOKEN: &str = "test-admin-token";
/// How long any wait may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// Path of a workspace binary, built by `cargo build --workspace` before the tests run.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (scripts/test does)",
        path.display()
    );
    path
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Polls `check` until it returns `Some`, failing the test after [`DEADLINE`].
pub fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A blocking HTTP client for tests.
pub fn http() -> reqwest::blocking::Client {
    tda_daemon::tls::blocking_client_builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// GETs JSON, returning the status and body.
pub fn get_json(url: &str) -> (u16, Value) {
    let resp = http().get(url).send().expect("GET");
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

/// POSTs a body with headers, returning the status and JSON body.
pub fn post(url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, Value) {
    let mut req = http().post(url).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().expect("POST");
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

/// A running daemon; killed (and its log printed if the test failed) when dropped.
pub struct Daemon {
    child: Child,
    log: PathBuf,
    /// Base URL it serves.
    pub url: String,
}

impl Daemon {
    fn spawn(binary: &str, config: &Path, log: PathBuf, url: String, extra: &[&str]) -> Daemon {
        let level = std::env::var("TDA_TEST_LOG").unwrap_or_else(|_| "info".into());
        Self::spawn_logging(binary, config, (log, &level), url, extra)
    }

    /// Spawns with `RUST_LOG` set to `level`.
    fn spawn_logging(
        binary: &str,
        config: &Path,
        (log, level): (PathBuf, &str),
        url: String,
        extra: &[&str],
    ) -> Daemon {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let child = Command::new(bin(binary))
            .args(extra)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", level)
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("spawn daemon");
        Daemon { child, log, url }
    }

    fn healthy(mut self) -> Daemon {
        self.wait_healthy(&http());
        self
    }

    fn wait_healthy(&mut self, client: &reqwest::blocking::Client) {
        let url = format!("{}/healthz", self.url);
        let start = Instant::now();
        loop {
            if client
                .get(&url)
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited with {status}:\n{}",
                    self.log.display(),
                    self.log_text()
                );
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{url} never became healthy:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the daemon logged so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the daemon at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends a signal by name (`HUP`, `TERM` …).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name} failed");
    }

    /// Asks the daemon to stop (SIGTERM) and waits for it to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        wait_for("daemon to exit", || self.child.try_wait().ok().flatten())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- {} ---\n{}", self.log.display(), self.log_text());
            return;
        }
        // Every daemon of every test: its log never holds the test tokens.
        let log = self.log_text();
        for token in [TOKEN, ADMIN_TOKEN] {
            assert!(
                !log.contains(token),
                "{} holds a token:\n{log}",
                self.log.display()
            );
        }
    }
}

/// A collector's files: config, tokens, profiles, data.
pub struct CollectorSetup {
    /// Directory holding everything.
    pub dir: PathBuf,
    /// Port it listens on.
    pub port: u16,
}

impl CollectorSetup {
    /// Writes a collector config under `dir` with `extra` TOML appended.
    pub fn new(dir: &Path, extra: &str) -> Self {
        fs::create_dir_all(dir.join("profiles")).expect("profiles dir");
        fs::write(dir.join("tokens"), format!("# agents\n{TOKEN}\n")).expect("tokens");
        fs::write(dir.join("admin-tokens"), format!("{ADMIN_TOKEN}\n")).expect("admin tokens");
        let port = free_port();
        let config = format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"data\"\nprofiles_dir = \"profiles\"\n{extra}\n[auth]\ningest_tokens_file = \"tokens\"\nadmin_tokens_file = \"admin-tokens\"\n"
        );
        fs::write(dir.join("collector.toml"), config).expect("collector.toml");
        CollectorSetup {
            dir: dir.to_path_buf(),
            port,
        }
    }

    /// Writes a profile file.
    pub fn profile(&self, file: &str, toml: &str) {
        fs::write(self.dir.join("profiles").join(file), toml).expect("profile");
    }

    /// The same files with the config moved to a new free port (for a restart while the old
    /// port may linger in TIME_WAIT).
    pub fn on_new_port(&self) -> CollectorSetup {
        let port = free_port();
        let config = fs::read_to_string(self.config_file()).expect("collector.toml");
        let moved = config.replace(
            &format!("127.0.0.1:{}\"", self.port),
            &format!("127.0.0.1:{port}\""),
        );
        fs::write(self.config_file(), moved).expect("collector.toml");
        CollectorSetup {
            dir: self.dir.clone(),
            port,
        }
    }

    /// The collector's config file.
    pub fn config_file(&self) -> PathBuf {
        self.dir.join("collector.toml")
    }

    /// Starts the collector and waits until it is healthy.
    pub fn start(&self) -> Daemon {
        Daemon::spawn(
            "tda-collector",
            &self.dir.join("collector.toml"),
            self.dir.join("collector.log"),
            format!("http://127.0.0.1:{}", self.port),
            &[],
        )
        .healthy()
    }

    /// Starts a collector configured for TLS, serving `https://127.0.0.1:<port>`; waits until
    /// `client` (trusting its CA) finds it healthy.
    pub fn start_tls(&self, client: &reqwest::blocking::Client) -> Daemon {
        let mut d = Daemon::spawn(
            "tda-collector",
            &self.dir.join("collector.toml"),
            self.dir.join("collector.log"),
            format!("https://127.0.0.1:{}", self.port),
            &[],
        );
        d.wait_healthy(client);
        d
    }

    /// Starts the collector logging at `level` (a `RUST_LOG` filter).
    pub fn start_logging(&self, level: &str) -> Daemon {
        Daemon::spawn_logging(
            "tda-collector",
            &self.dir.join("collector.toml"),
            (self.dir.join("collector.log"), level),
            format!("http://127.0.0.1:{}", self.port),
            &[],
        )
        .healthy()
    }
}

/// Starts an agent under `dir` shipping to `collector_url`, sampling every second, watching `pid`,
/// closing batches after 200 ms.
pub fn start_agent(dir: &Path, collector_url: &str, pid: u32) -> Daemon {
    AgentSetup::new(dir, collector_url, pid).start()
}

/// [`start_agent`] with other `[batch]` settings.
pub fn start_agent_with(dir: &Path, collector_url: &str, pid: u32, batch: &str) -> Daemon {
    AgentSetup {
        batch: batch.into(),
        ..AgentSetup::new(dir, collector_url, pid)
    }
    .start()
}

/// An agent's files; [`AgentSetup::start`] writes them (again) and starts the agent.
#[derive(Debug, Clone)]
pub struct AgentSetup {
    /// Directory holding config, token, profiles, spool and log.
    pub dir: PathBuf,
    /// Collector base URL.
    pub collector_url: String,
    /// Process the agent watches.
    pub pid: u32,
    /// Agent id.
    pub id: String,
    /// `[batch]` table body.
    pub batch: String,
    /// `[spool]` table body.
    pub spool: String,
    /// Intake port, fixed at creation so a restarted agent listens where the last one did.
    pub port: u16,
    /// More lines of the `[collector]` table (TLS files).
    pub collector: String,
    /// More lines after `[intake]`'s `listen` (settings, then `[intake.*]` tables).
    pub intake: String,
    /// More tables at the end of the file (`[request_log]`).
    pub tables: String,
}

impl AgentSetup {
    /// Defaults: id `test-agent`, batches closed after 200 ms, spool in `<dir>/spool`.
    pub fn new(dir: &Path, collector_url: &str, pid: u32) -> Self {
        AgentSetup {
            dir: dir.to_path_buf(),
            collector_url: collector_url.to_string(),
            pid,
            id: "test-agent".into(),
            batch: "max_age_ms = 200".into(),
            spool: "dir = \"spool\"".into(),
            port: free_port(),
            collector: String::new(),
            intake: String::new(),
            tables: String::new(),
        }
    }

    /// Base URL of the agent's intake.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Writes the files and starts the agent, waiting until its intake answers.
    pub fn start(&self) -> Daemon {
        let level = std::env::var("TDA_TEST_LOG").unwrap_or_else(|_| "info".into());
        self.start_logging(&level)
    }

    /// [`AgentSetup::start`] logging at `level` (a `RUST_LOG` filter).
    pub fn start_logging(&self, level: &str) -> Daemon {
        let dir = &self.dir;
        fs::create_dir_all(dir.join("profiles")).expect("agent dir");
        fs::write(dir.join("token"), TOKEN).expect("token");
        fs::write(dir.join("watched.pid"), self.pid.to_string()).expect("pid file");
        fs::write(
            dir.join("profiles/perf.toml"),
            "name = \"Perf\"\ntype = \"performance\"\n[settings]\ncollection_interval = 1\n",
        )
        .expect("profile");
        let config = format!(
            "agent_id = \"{}\"\nprofiles_dir = \"profiles\"\n[collector]\nurl = \"{}\"\ntoken_file = \"token\"\nsettings_poll_interval = \"300ms\"\n{}\n\
             [intake]\nlisten = \"127.0.0.1:{}\"\n{}\n[batch]\n{}\n[spool]\n{}\n[process]\npid_file = \"watched.pid\"\n{}\n",
            self.id, self.collector_url, self.collector, self.port, self.intake, self.batch, self.spool, self.tables
        );
        fs::write(dir.join("agent.toml"), config).expect("agent.toml");
        Daemon::spawn_logging(
            "tda-agent",
            &dir.join("agent.toml"),
            (dir.join("agent.log"), level),
            self.url(),
            &[],
        )
        .healthy()
    }
}

/// The collector's stored events of the last ten minutes, once there are at least `n`.
pub fn recent_events(collector: &str, n: usize) -> Vec<Value> {
    let now = now_ms();
    let url = format!(
        "{collector}/api/v1/events?from={}&to={}&limit=1000",
        now - 600_000,
        now + 60_000
    );
    wait_for(&format!("{n} events stored"), || {
        let (_, page) = get_json(&url);
        let events = page["events"].as_array()?.clone();
        (events.len() >= n).then_some(events)
    })
}

/// The agent's `/metrics` text.
pub fn agent_metrics(agent_url: &str) -> String {
    http()
        .get(format!("{agent_url}/metrics"))
        .send()
        .expect("GET /metrics")
        .text()
        .expect("metrics text")
}

/// The agent's counters from its `/healthz`.
pub fn agent_counters(agent_url: &str) -> Value {
    get_json(&format!("{agent_url}/healthz")).1["counters"].clone()
}

/// Runs the `tda` CLI against a collector, with the admin token in its environment.
pub fn tda(server: &str, args: &[&str]) -> Output {
    Command::new(bin("tda"))
        .env("TDA_ADMIN_TOKEN", ADMIN_TOKEN)
        .arg("--server")
        .arg(server)
        .args(args)
        .output()
        .expect("run tda")
}

/// Runs `tda export --quiet` of `[from, to)` (epoch ms) into `output`; `args` say what
/// (`--data events --format csv`, filters).
pub fn tda_export(server: &str, args: &[&str], from: i64, to: i64, output: &Path) -> Output {
    let (since, until) = (from.to_string(), to.to_string());
    let out = output.to_str().expect("a UTF-8 path");
    let range = [
        "--since", &since, "--until", &until, "--output", out, "--quiet",
    ];
    let all: Vec<&str> = std::iter::once("export")
        .chain(args.iter().copied())
        .chain(range)
        .collect();
    tda(server, &all)
}

/// GETs usage stats over `[from, to)` (epoch ms).
pub fn usage(collector: &str, from: i64, to: i64) -> Value {
    let (status, v) = get_json(&format!(
        "{collector}/api/v1/stats/usage?from={from}&to={to}"
    ));
    assert_eq!(status, 200, "{v}");
    v
}

/// Requests per feature from a usage-stats answer.
pub fn requests_per_feature(stats: &Value) -> std::collections::BTreeMap<String, u64> {
    stats["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| {
            (
                f["feature"].as_str().expect("feature").to_string(),
                f["requests"].as_u64().expect("requests"),
            )
        })
        .collect()
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    tda_schema::timestamp::now_ms()
}

/// Sends only the head of a POST declaring a `length`-byte body and returns the status line's
/// code: a server that refuses by the declared length answers before any body is sent.
pub fn post_declaring_length(url: &str, path: &str, length: usize) -> u16 {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    write!(s, "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n").expect("write head");
    let mut head = [0u8; 12];
    s.read_exact(&mut head).expect("status line");
    String::from_utf8_lossy(&head[9..12])
        .parse()
        .expect("status code")
}

/// Runs `tda-agent simulate` against an agent's intake with `args` (plus `--intake` and
/// `--truth`), and returns the simulator's ground truth.
pub fn simulate(agent: &Daemon, args: &[&str], truth_file: &Path) -> Value {
    let out = Command::new(bin("tda-agent"))
        .args(["simulate", "--intake", &agent.url])
        .args(args)
        .arg("--truth")
        .arg(truth_file)
        .output()
        .expect("tda-agent simulate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&fs::read(truth_file).expect("truth file")).expect("truth JSON")
}

/// Waits until the agent has had every event of a simulation acknowledged.
pub fn wait_all_sent(agent: &Daemon, truth: &Value) {
    let events = truth["events"].as_u64().expect("events");
    wait_for("every simulated event stored", || {
        (agent_counters(&agent.url)["events_sent"].as_u64() == Some(events)).then_some(())
    });
}

/// Asserts two JSON answers equal but for the keys in `ignored`; numbers may differ by 1e-12 of
/// the larger (sums taken in another order). Names the path of the first difference.
pub fn assert_json_close(a: &Value, b: &Value, ignored: &[&str]) {
    json_close(a, b, ignored, "");
}

fn json_close(a: &Value, b: &Value, ignored: &[&str], at: &str) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys = |o: &serde_json::Map<String, Value>| {
                let mut k: Vec<String> = o
                    .keys()
                    .filter(|k| !ignored.contains(&k.as_str()))
                    .cloned()
                    .collect();
                k.sort();
                k
            };
            assert_eq!(keys(x), keys(y), "{at}: keys differ");
            for k in keys(x) {
                json_close(&x[&k], &y[&k], ignored, &format!("{at}/{k}"));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}: lengths differ");
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                json_close(p, q, ignored, &format!("{at}/{i}"));
            }
        }
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            let allowed = 1e-12 * x.abs().max(y.abs());
            assert!((x - y).abs() <= allowed, "{at}: {x} and {y} differ");
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}
