//! Host and watched-process sampling with sysinfo.

use std::collections::HashSet;
use std::path::PathBuf;

use sysinfo::{
    CpuRefreshKind, DiskRefreshKind, Disks, MemoryRefreshKind, Networks, Pid, ProcessRefreshKind,
    ProcessesToUpdate, RefreshKind, System,
};
use tda_schema::config::ProcessConfig;
use tda_schema::{HostSample, ProcessSample, Timestamp};

/// Why sampling could not start.
#[derive(Debug, thiserror::Error)]
#[error("sysinfo: {0}")]
pub struct SampleError(String);

/// Takes [`HostSample`]s; keeps the previous readings so rates cover the time between samples.
pub struct Sampler {
    system: System,
    disks: Disks,
    networks: Networks,
    process: ProcessConfig,
    pid: Option<Pid>,
}

impl Sampler {
    /// Opens the host's counters and takes the first reading (CPU use needs two).
    pub fn new(process: ProcessConfig) -> Result<Self, SampleError> {
        let err = |e: sysinfo::Error| SampleError(e.to_string());
        let refresh = RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing().with_usage())
            .with_memory(MemoryRefreshKind::everything());
        let system = System::new_with_specifics(refresh).map_err(err)?;
        let disks = Disks::new_with_refreshed_list_specifics(disk_refresh()).map_err(err)?;
        let networks = Networks::new_with_refreshed_list().map_err(err)?;
        let mut sampler = Sampler {
            system,
            disks,
            networks,
            process,
            pid: None,
        };
        sampler.refresh_process();
        Ok(sampler)
    }

    /// Watches another process from now on.
    pub fn set_process(&mut self, process: ProcessConfig) {
        self.process = process;
        self.pid = None;
    }

    /// Reads every counter now.
    pub fn sample(&mut self) -> HostSample {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        self.disks.refresh_specifics(true, disk_refresh());
        self.networks.refresh(true);
        let process = self.refresh_process();
        let (disk_total, disk_available, disk_read, disk_written) = self.disk_totals();
        let nets = self.networks.values();
        let sum = |f: fn(&sysinfo::NetworkData) -> u64| nets.clone().map(f).sum::<u64>();
        let load = System::load_average().map_or([0.0; 3], |l| [l.one, l.five, l.fifteen]);
        let mem_total = self.system.total_memory();
        HostSample {
            timestamp: Timestamp::now(),
            cpu_percent: clamp_percent(self.system.global_cpu_usage()),
            cpu_per_core: self
                .system
                .cpus()
                .iter()
                .map(|c| clamp_percent(c.usage()))
                .collect(),
            mem_total_bytes: mem_total,
            mem_used_bytes: mem_total.saturating_sub(self.system.available_memory()),
            swap_total_bytes: self.system.total_swap(),
            swap_used_bytes: self.system.used_swap(),
            load,
            disk_total_bytes: disk_total,
            disk_available_bytes: disk_available,
            disk_read_bytes: disk_read,
            disk_written_bytes: disk_written,
            net_rx_bytes: sum(|n| n.received()),
            net_tx_bytes: sum(|n| n.transmitted()),
            net_rx_packets: sum(|n| n.packets_received()),
            net_tx_packets: sum(|n| n.packets_transmitted()),
            net_rx_errors: sum(|n| n.errors_on_received()),
            net_tx_errors: sum(|n| n.errors_on_transmitted()),
            process,
        }
    }

    /// Sums space and I/O over local disks, counting each device once.
    fn disk_totals(&self) -> (u64, u64, u64, u64) {
        let mut seen = HashSet::new();
        let mut totals = (0, 0, 0, 0);
        for disk in self.disks.iter() {
            if !seen.insert(disk.name().to_owned()) {
                continue;
            }
            let usage = disk.usage();
            totals.0 += disk.total_space();
            totals.1 += disk.available_space();
            totals.2 += usage.read_bytes;
            totals.3 += usage.written_bytes;
        }
        totals
    }

    /// Finds the watched process (again, if it restarted) and reads its figures.
    fn refresh_process(&mut self) -> Option<ProcessSample> {
        let wanted = self.find_pid()?;
        if self.pid != Some(wanted) {
            self.pid = Some(wanted);
        }
        let kind = ProcessRefreshKind::nothing()
            .with_cpu()
            .with_memory()
            .with_tasks();
        self.system
            .refresh_processes_specifics(ProcessesToUpdate::Some(&[wanted]), true, kind);
        let p = self.system.process(wanted)?;
        Some(ProcessSample {
            pid: wanted.as_u32(),
            name: p.name().to_string_lossy().into_owned(),
            cpu_percent: p.cpu_usage().max(0.0),
            rss_bytes: p.memory(),
            virtual_bytes: p.virtual_memory(),
            threads: p.tasks().map_or(1, |t| t.len().max(1) as u32),
            open_fds: p.open_files().unwrap_or(0) as u32,
            uptime_secs: p.run_time(),
        })
    }

    fn find_pid(&mut self) -> Option<Pid> {
        if let Some(file) = &self.process.pid_file {
            return read_pid(file);
        }
        let name = self.process.name.clone()?;
        if let Some(pid) = self.pid.filter(|p| self.system.process(*p).is_some()) {
            return Some(pid);
        }
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing(),
        );
        let found = self
            .system
            .processes_by_exact_name(name.as_ref())
            .map(|p| p.pid())
            .min();
        found
    }
}

fn disk_refresh() -> DiskRefreshKind {
    DiskRefreshKind::nothing().with_storage().with_io_usage()
}

fn read_pid(file: &PathBuf) -> Option<Pid> {
    let text = std::fs::read_to_string(file).ok()?;
    text.trim().parse::<u32>().ok().map(Pid::from_u32)
}

fn clamp_percent(v: f32) -> f32 {
    if v.is_finite() {
        v.clamp(0.0, 100.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_host_and_this_process() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        std::fs::write(&pid_file, std::process::id().to_string()).unwrap();
        let mut sampler = Sampler::new(ProcessConfig {
            pid_file: Some(pid_file),
            name: None,
        })
        .unwrap();
        std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
        let s = sampler.sample();
        s.validate().unwrap();
        assert!(s.mem_total_bytes > 0 && s.mem_used_bytes <= s.mem_total_bytes);
        assert_eq!(
            s.cpu_per_core.len(),
            std::thread::available_parallelism().unwrap().get()
        );
        let p = s.process.expect("own process found by pid file");
        assert_eq!(p.pid, std::process::id());
        assert!(p.rss_bytes > 0);
        assert!(p.threads >= 1);
        assert!(
            p.open_fds >= 3,
            "stdin, stdout, stderr at least: {}",
            p.open_fds
        );
    }

    #[test]
    fn missing_process_is_absent_not_an_error() {
        let mut sampler = Sampler::new(ProcessConfig {
            pid_file: None,
            name: Some("no-such-process-tda".into()),
        })
        .unwrap();
        assert!(sampler.sample().process.is_none());
    }
}
