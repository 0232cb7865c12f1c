//! What triggers a reload: change events on the profiles directory and the config file
//! (notify), a poll for file systems without events, and SIGHUP. Triggers coalesce: a reload
//! runs once the changes have been quiet for the configured debounce.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::app::App;

/// Keeps the watcher alive for as long as it is held.
pub struct Watching {
    _watcher: Option<notify::RecommendedWatcher>,
}

/// Starts the watchers, the poll and the SIGHUP handler, and the task that reloads.
pub fn spawn(app: Arc<App>, config_file: &Path) -> Watching {
    let cfg = app.config();
    let (tx, rx) = mpsc::unbounded_channel::<()>();
    let profiles_dir = cfg.profiles_dir();
    let watcher = if cfg.reload.watch {
        watch(&profiles_dir, config_file, tx.clone())
    } else {
        None
    };
    let fingerprint_of = {
        let (dir, file) = (profiles_dir.clone(), config_file.to_path_buf());
        move || fingerprint(&dir, &file)
    };
    tokio::spawn(poll(fingerprint_of, cfg.reload.poll_interval.0, tx.clone()));
    tokio::spawn(on_sighup(tx));
    tokio::spawn(reload_loop(app, rx, cfg.reload.debounce.0));
    Watching { _watcher: watcher }
}

fn watch(
    profiles_dir: &Path,
    config_file: &Path,
    tx: mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    let config_name = config_file.file_name().map(|n| n.to_os_string());
    let relevant = move |p: &PathBuf| {
        p.extension().is_some_and(|x| x == "toml")
            || (config_name.is_some() && p.file_name().map(|n| n.to_os_string()) == config_name)
    };
    let handler = move |event: notify::Result<notify::Event>| {
        // Reading a file (as a reload does) is an access event: only changes count.
        let change = |e: &notify::Event| !matches!(e.kind, notify::EventKind::Access(_));
        if event.is_ok_and(|e| change(&e) && e.paths.iter().any(&relevant)) {
            let _ = tx.send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "no file change events; relying on the poll");
            return None;
        }
    };
    let config_dir = config_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    for dir in [profiles_dir, config_dir] {
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch; relying on the poll");
        }
    }
    Some(watcher)
}

/// Names, sizes and modification times of the profile files and the config file.
fn fingerprint(profiles_dir: &Path, config_file: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(profiles_dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect()
        })
        .unwrap_or_default();
    paths.push(config_file.to_path_buf());
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p).ok();
            let len = meta.as_ref().map_or(0, |m| m.len());
            (p, len, meta.and_then(|m| m.modified().ok()))
        })
        .collect()
}

async fn poll<F>(fingerprint_of: F, every: Duration, tx: mpsc::UnboundedSender<()>)
where
    F: Fn() -> Vec<(PathBuf, u64, Option<SystemTime>)>,
{
    let mut last = fingerprint_of();
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = fingerprint_of();
        if now != last {
            last = now;
            if tx.send(()).is_err() {
                return;
            }
        }
    }
}

async fn on_sighup(tx: mpsc::UnboundedSender<()>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP");
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading");
        if tx.send(()).is_err() {
            return;
        }
    }
}

/// Waits for a trigger, then for `debounce` without another, then reloads once.
async fn reload_loop(app: Arc<App>, rx: mpsc::UnboundedReceiver<()>, debounce: Duration) {
    debounced(rx, debounce, move || {
        let app = app.clone();
        async move {
            tda_daemon::service::reloading();
            let _ = tokio::task::spawn_blocking(move || app.reload()).await;
            tda_daemon::service::ready("reloaded");
        }
    })
    .await
}

/// Runs `reload` once per burst of triggers: after a trigger, once `debounce` has passed
/// without another; until the triggers' sender is gone.
async fn debounced<F, R>(mut rx: mpsc::UnboundedReceiver<()>, debounce: Duration, reload: R)
where
    R: Fn() -> F,
    F: std::future::Future<Output = ()>,
{
    while rx.recv().await.is_some() {
        loop {
            match tokio::time::timeout(debounce, rx.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) => return,
                Err(_) => break,
            }
        }
        reload().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Lets the debounce task run up to the (paused) clock's present.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_triggers_reloads_once_after_the_quiet_period() {
        let (tx, rx) = mpsc::unbounded_channel();
        let reloads = Arc::new(AtomicUsize::new(0));
        let counted = reloads.clone();
        let debounce = Duration::from_millis(500);
        tokio::spawn(debounced(rx, debounce, move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async {}
        }));
        let count = || reloads.load(Ordering::SeqCst);
        for _ in 0..5 {
            tx.send(()).unwrap();
            settle().await;
            tokio::time::advance(Duration::from_millis(300)).await;
            settle().await;
        }
        assert_eq!(
            count(),
            0,
            "each trigger came within the debounce of the last"
        );
        tokio::time::advance(Duration::from_millis(201)).await;
        settle().await;
        assert_eq!(count(), 1, "quiet for the debounce: one reload");
        tokio::time::advance(Duration::from_secs(10)).await;
        settle().await;
        assert_eq!(count(), 1, "no trigger, no reload");
        tx.send(()).unwrap();
        settle().await;
        tokio::time::advance(Duration::from_millis(501)).await;
        settle().await;
        assert_eq!(count(), 2, "a later trigger reloads again");
    }

    #[test]
    fn the_fingerprint_changes_with_a_profile_file_and_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let (profiles, config) = (
            dir.path().join("profiles"),
            dir.path().join("collector.toml"),
        );
        std::fs::create_dir(&profiles).unwrap();
        std::fs::write(&config, "a").unwrap();
        let before = fingerprint(&profiles, &config);
        std::fs::write(profiles.join("web.toml"), "name = \"Web\"").unwrap();
        std::fs::write(profiles.join("notes.txt"), "not a profile").unwrap();
        let added = fingerprint(&profiles, &config);
        assert_ne!(before, added);
        assert_eq!(
            added.len(),
            2,
            "the profile and the config file, not the notes"
        );
        std::fs::write(&config, "ab").unwrap();
        assert_ne!(
            fingerprint(&profiles, &config),
            added,
            "the config file grew"
        );
    }
}
