//! This process's CPU time, memory, start time and file descriptors, for `process_*` metrics.

use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};

/// One reading of this process.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident memory, bytes.
    pub resident_bytes: u64,
    /// Virtual memory, bytes.
    pub virtual_bytes: u64,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: f64,
    /// Open file descriptors.
    pub open_fds: usize,
    /// The descriptor limit, when known.
    pub max_fds: Option<usize>,
}

/// Reads this process; `None` when the platform does not say.
pub fn read() -> Option<Reading> {
    let pid = sysinfo::get_current_pid().ok()?;
    let mut sys = System::new().ok()?;
    let kind = ProcessRefreshKind::nothing().with_cpu().with_memory();
    sys.refresh_processes_specifics(ProcessesToUpdate::Some(&[pid]), false, kind);
    let p = sys.process(pid)?;
    Some(Reading {
        cpu_seconds: p.accumulated_cpu_time() as f64 / 1000.0,
        resident_bytes: p.memory(),
        virtual_bytes: p.virtual_memory(),
        start_time_seconds: p.start_time() as f64,
        open_fds: p.open_files().unwrap_or(0),
        max_fds: p.open_files_limit(),
    })
}
