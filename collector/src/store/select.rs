//! What a query selects from storage: the event filter (feature, user, status, labels; agent
//! for samples) and the host-sample series by name.

use tda_schema::{Event, HostSample};

/// Filters on events (all given must match) and on the agent of samples.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this feature.
    pub feature: Option<String>,
    /// Only this user.
    pub user: Option<String>,
    /// Only this HTTP status.
    pub status: Option<u16>,
    /// Only samples of this agent.
    pub agent: Option<String>,
    /// Only events whose property `key` equals `value` (a string property, or the JSON text of
    /// another: `true`, `3`), for every pair.
    pub labels: Vec<(String, String)>,
}

impl Filter {
    /// Whether an event passes every event filter.
    pub fn matches(&self, e: &Event) -> bool {
        self.feature.as_ref().is_none_or(|f| *f == e.feature)
            && self.user.as_ref().is_none_or(|u| *u == e.user_id)
            && self.status.is_none_or(|s| Some(s) == e.status)
            && self
                .labels
                .iter()
                .all(|(k, v)| label_is(e.properties.get(k), v))
    }
}

/// Whether a property has the value a label filter names: a string equal to it, or another
/// JSON value whose text is it.
pub fn label_is(property: Option<&serde_json::Value>, wanted: &str) -> bool {
    match property {
        Some(serde_json::Value::String(s)) => s == wanted,
        Some(other) => serde_json::to_string(other).is_ok_and(|text| text == wanted),
        None => false,
    }
}

/// Host and process series, from samples.
pub const SAMPLE_SERIES: [&str; 11] = [
    "host.cpu_percent",
    "host.mem_used_bytes",
    "host.swap_used_bytes",
    "host.load1",
    "host.disk_read_bytes",
    "host.disk_written_bytes",
    "host.net_rx_bytes",
    "host.net_tx_bytes",
    "process.cpu_percent",
    "process.rss_bytes",
    "process.open_fds",
];

/// The value of the sample series `series` in `s`; `None` for an unknown series or a process
/// figure of a sample without the watched process.
pub fn sample_value(series: &str, s: &HostSample) -> Option<f64> {
    let p = s.process.as_ref();
    Some(match series {
        "host.cpu_percent" => f64::from(s.cpu_percent),
        "host.mem_used_bytes" => s.mem_used_bytes as f64,
        "host.swap_used_bytes" => s.swap_used_bytes as f64,
        "host.load1" => s.load[0],
        "host.disk_read_bytes" => s.disk_read_bytes as f64,
        "host.disk_written_bytes" => s.disk_written_bytes as f64,
        "host.net_rx_bytes" => s.net_rx_bytes as f64,
        "host.net_tx_bytes" => s.net_tx_bytes as f64,
        "process.cpu_percent" => f64::from(p?.cpu_percent),
        "process.rss_bytes" => p?.rss_bytes as f64,
        "process.open_fds" => f64::from(p?.open_fds),
        _ => return None,
    })
}
