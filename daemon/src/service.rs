//! Running as a service. Under systemd (`Type=notify`): `READY=1` once serving, `STATUS=` lines,
//! `RELOADING=1` with `MONOTONIC_USEC` around a reload, `STOPPING=1`, and `WATCHDOG=1` pings sent
//! only while every registered main loop keeps making progress. Without systemd: the classic
//! daemon (`--daemon --pid-file`, forked before the async runtime starts).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

fn send(states: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "service manager notification failed");
    }
}

/// `READY=1` and a status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A status line.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// `RELOADING=1` with the monotonic time, before a reload (then [`ready`] after it).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// `STOPPING=1`.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Main loops that must keep making progress for the watchdog to be fed.
#[derive(Debug, Default)]
pub struct Progress {
    loops: Mutex<Vec<(String, Arc<AtomicI64>, Duration)>>,
    start: std::sync::OnceLock<Instant>,
}

/// A loop's heartbeat. A loop is stalled when one round (from [`Beat::tick`] to [`Beat::idle`]
/// or the next tick) takes longer than its allowance; waiting for work never stalls.
#[derive(Debug, Clone)]
pub struct Beat(Arc<AtomicI64>, Instant);

impl Beat {
    /// A round starts (or the loop made progress) now.
    pub fn tick(&self) {
        self.0
            .store(self.1.elapsed().as_millis() as i64, Ordering::Relaxed);
    }

    /// The loop waits for work (it cannot stall while it waits).
    pub fn idle(&self) {
        self.0.store(i64::MAX, Ordering::Relaxed);
    }
}

impl Progress {
    /// Registers a loop that must tick at least every `allowance`.
    pub fn register(&self, name: &str, allowance: Duration) -> Beat {
        let start = *self.start.get_or_init(Instant::now);
        let last = Arc::new(AtomicI64::new(start.elapsed().as_millis() as i64));
        self.loops.lock().unwrap_or_else(|p| p.into_inner()).push((
            name.to_string(),
            last.clone(),
            allowance,
        ));
        Beat(last, start)
    }

    /// The loops that have not ticked within their allowance.
    pub fn stalled(&self) -> Vec<String> {
        let start = *self.start.get_or_init(Instant::now);
        self.stalled_at(start.elapsed().as_millis() as i64)
    }

    /// [`Progress::stalled`] at `now` ms after the first registration.
    fn stalled_at(&self, now: i64) -> Vec<String> {
        self.loops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, last, allow)| {
                now - last.load(Ordering::Relaxed) > allow.as_millis() as i64
            })
            .map(|(name, _, _)| name.clone())
            .collect()
    }
}

/// Feeds systemd's watchdog (when the unit has `WatchdogSec=`) at half its period while no loop
/// has stalled; `status` gives the `STATUS=` line sent with each ping. Runs until the process ends.
pub async fn watchdog(progress: Arc<Progress>, status: impl Fn() -> String + Send + 'static) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let mut tick = tokio::time::interval(period / 2);
    let mut was_stalled = false;
    loop {
        tick.tick().await;
        let stalled = progress.stalled();
        if stalled.is_empty() {
            send(&[NotifyState::Watchdog, NotifyState::Status(&status())]);
            if was_stalled {
                tracing::info!("main loops progress again; watchdog fed");
            }
        } else if !was_stalled {
            tracing::error!(loops = ?stalled, "main loop stalled; the watchdog is no longer fed");
        }
        was_stalled = !stalled.is_empty();
    }
}

/// The classic-daemon options of `run` (for hosts without systemd).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DaemonArgs {
    /// Run in the background as a classic daemon (refused under systemd, which supervises
    /// the foreground process).
    #[arg(long, global = true, requires = "pid_file")]
    pub daemon: bool,
    /// With --daemon: the pid file (a stale one, whose process is gone, is replaced).
    #[arg(long, global = true)]
    pub pid_file: Option<PathBuf>,
    /// With --daemon: the user (and its group) to run as.
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// With --daemon: where the logs go (default: nowhere).
    #[arg(long, global = true)]
    pub log_file: Option<PathBuf>,
}

/// Runs a daemon's `main`: forks first when `--daemon` asks (before the async runtime exists),
/// sets up logging, runs, and removes the pid file at the end.
pub fn run_service<F>(name: &str, args: &DaemonArgs, main: F) -> std::process::ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    crate::memory::limit_arenas();
    if args.daemon {
        let pid_file = args
            .pid_file
            .as_deref()
            .unwrap_or(Path::new("/run/tda.pid"));
        if let Err(e) = daemonize(pid_file, args.user.as_deref(), args.log_file.as_deref()) {
            eprintln!("{name}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    crate::init_logging();
    let code = crate::run_main(name, main);
    if let (true, Some(p)) = (args.daemon, &args.pid_file) {
        let _ = std::fs::remove_file(p);
    }
    code
}

/// Why the process could not become a daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Started by systemd, which supervises the foreground process itself.
    #[error("--daemon is for hosts without systemd; NOTIFY_SOCKET is set, so run in the foreground (Type=notify)")]
    UnderSystemd,
    /// Another instance holds the pid file.
    #[error("{file}: already running as pid {pid}")]
    Running {
        /// The pid file.
        file: PathBuf,
        /// Its process.
        pid: u32,
    },
    /// Forking, the pid file, the user or the log file failed.
    #[error("daemonize: {0}")]
    Fork(String),
}

/// Whether `pid` names a live process.
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Forks into the background (call before the async runtime starts): writes `pid_file` (a stale
/// one, whose process is gone, is replaced; a live one refuses), drops to `user` when given, sends
/// stdout and stderr to `log_file` (or `/dev/null`).
pub fn daemonize(
    pid_file: &Path,
    user: Option<&str>,
    log_file: Option<&Path>,
) -> Result<(), DaemonError> {
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        return Err(DaemonError::UnderSystemd);
    }
    if let Ok(text) = std::fs::read_to_string(pid_file) {
        match text.trim().parse::<u32>() {
            Ok(pid) if alive(pid) => {
                return Err(DaemonError::Running {
                    file: pid_file.to_path_buf(),
                    pid,
                })
            }
            _ => {
                eprintln!(
                    "{}: stale pid file (its process is gone); replacing it",
                    pid_file.display()
                );
                let _ = std::fs::remove_file(pid_file);
            }
        }
    }
    let mut d = daemonize::Daemonize::new()
        .pid_file(pid_file)
        .chown_pid_file(true)
        .working_directory("/")
        .umask(0o027);
    if let Some(u) = user {
        d = d.user(u).group(u);
    }
    if let Some(log) = log_file {
        let open = |p: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| DaemonError::Fork(format!("{}: {e}", p.display())))
        };
        d = d.stdout(open(log)?).stderr(open(log)?);
    }
    d.start().map_err(|e| DaemonError::Fork(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_that_stops_ticking_is_stalled() {
        let p = Progress::default();
        let fast = p.register("fast", Duration::from_secs(60));
        let _slow = p.register("slow", Duration::from_secs(1));
        fast.tick();
        assert!(p.stalled_at(500).is_empty());
        assert_eq!(p.stalled_at(30_000), vec!["slow"]);
        assert_eq!(p.stalled_at(90_000), vec!["fast", "slow"]);
        fast.idle();
        assert_eq!(
            p.stalled_at(90_000),
            vec!["slow"],
            "waiting for work is not a stall"
        );
    }

    #[test]
    fn daemonize_refuses_under_systemd_and_a_live_pid_file() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("x.pid");
        std::fs::write(&pid_file, std::process::id().to_string()).unwrap();
        // This test process is alive: the pid file is not stale.
        let e = daemonize(&pid_file, None, None).unwrap_err();
        assert!(
            matches!(e, DaemonError::Running { pid, .. } if pid == std::process::id()),
            "{e}"
        );
    }
}
