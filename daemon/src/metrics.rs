//! Prometheus text exposition (format 0.0.4) of a daemon's own counters, histograms of what it
//! observes, and the standard `process_*` metrics.
//!
//! The daemons keep their counters as atomics they already report on `/healthz`; this module
//! renders them at scrape time. (The `prometheus-client` crate writes only OpenMetrics and wants
//! its own metric types in a registry; the 0.0.4 text format is what `promtool check metrics`
//! checks and every Prometheus scrapes.)

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper::StatusCode;

use crate::http::{with_type, Response};

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (names end in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Bucketed observations.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A scrape's text, written one family at a time.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

/// One family being written: its samples follow its `# HELP` and `# TYPE` lines.
pub struct Family<'a> {
    out: &'a mut String,
    name: &'a str,
}

impl Exposition {
    /// An empty scrape.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a family; add its samples with [`Family::sample`].
    pub fn family<'a>(&'a mut self, name: &'a str, kind: Kind, help: &str) -> Family<'a> {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        Family {
            out: &mut self.out,
            name,
        }
    }

    /// A counter without labels.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, Kind::Counter, help)
            .sample(&[], value as f64);
    }

    /// A gauge without labels.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, Kind::Gauge, help).sample(&[], value);
    }

    /// A histogram family; one series per label set.
    pub fn histogram(&mut self, name: &str, help: &str, series: &[(&[(&str, &str)], &Histogram)]) {
        let mut family = self.family(name, Kind::Histogram, help);
        for (labels, h) in series {
            family.histogram(labels, h);
        }
    }

    /// The standard process metrics of this process (what Prometheus's own clients export).
    pub fn process(&mut self) {
        let Some(p) = crate::process::read() else {
            return;
        };
        let mut f = self.family(
            "process_cpu_seconds_total",
            Kind::Counter,
            "Total user and system CPU time spent in seconds.",
        );
        f.sample(&[], p.cpu_seconds);
        self.gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            p.resident_bytes as f64,
        );
        self.gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            p.virtual_bytes as f64,
        );
        self.gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            p.start_time_seconds,
        );
        self.gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            p.open_fds as f64,
        );
        if let Some(max) = p.max_fds {
            self.gauge(
                "process_max_fds",
                "Maximum number of open file descriptors.",
                max as f64,
            );
        }
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }

    /// The text as a `200` response with the exposition content type.
    pub fn response(self) -> Response {
        with_type(StatusCode::OK, self.out, CONTENT_TYPE)
    }
}

impl Family<'_> {
    /// One sample of the family with these labels.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        let name = self.name;
        self.line(name, "", labels, None, value);
        self
    }

    /// One histogram series: its buckets, `_sum` and `_count`.
    pub fn histogram(&mut self, labels: &[(&str, &str)], h: &Histogram) -> &mut Self {
        let name = self.name;
        let mut cumulative = 0;
        for (bound, n) in h.bounds.iter().zip(&h.counts) {
            cumulative += n.load(Ordering::Relaxed);
            let le = number(*bound);
            self.line(name, "_bucket", labels, Some(&le), cumulative as f64);
        }
        let count = h.count();
        self.line(name, "_bucket", labels, Some("+Inf"), count as f64);
        self.line(name, "_sum", labels, None, h.sum());
        self.line(name, "_count", labels, None, count as f64);
        self
    }

    fn line(
        &mut self,
        name: &str,
        suffix: &str,
        labels: &[(&str, &str)],
        le: Option<&str>,
        v: f64,
    ) {
        let out = &mut *self.out;
        out.push_str(name);
        out.push_str(suffix);
        let extra = le.map(|le| ("le", le));
        let mut all = labels.iter().copied().chain(extra).peekable();
        if all.peek().is_some() {
            out.push('{');
            for (i, (k, val)) in all.enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{k}=\"{}\"", escape_label(val));
            }
            out.push('}');
        }
        let _ = writeln!(out, " {}", number(v));
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A sample value as the format spells it.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

/// Observations counted in fixed buckets, lock-free (one atomic per bucket).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    overflow: AtomicU64,
    /// The sum of observations, as `f64` bits.
    sum: AtomicU64,
}

/// Buckets for durations in seconds, 1 ms to 5 min.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Buckets for counts of items (events in a batch), 1 to 100,000.
pub const COUNT_BUCKETS: &[f64] = &[
    1.0, 10.0, 50.0, 100.0, 500.0, 1_000.0, 5_000.0, 10_000.0, 50_000.0, 100_000.0,
];

/// Buckets for sizes in bytes, 256 B to 16 MiB.
pub const BYTES_BUCKETS: &[f64] = &[
    256.0,
    1_024.0,
    4_096.0,
    16_384.0,
    65_536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
];

impl Histogram {
    /// An empty histogram with these upper bounds (ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            overflow: AtomicU64::new(0),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Counts one observation.
    pub fn observe(&self, v: f64) {
        match self.bounds.iter().position(|b| v <= *b) {
            Some(i) => self.counts[i].fetch_add(1, Ordering::Relaxed),
            None => self.overflow.fetch_add(1, Ordering::Relaxed),
        };
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }

    /// Observations counted.
    pub fn count(&self) -> u64 {
        self.counts
            .iter()
            .chain([&self.overflow])
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// The sum of the observations.
    pub fn sum(&self) -> f64 {
        f64::from_bits(self.sum.load(Ordering::Relaxed))
    }
}

/// One counter as declared by [`counters!`]: the metric family it is exported in, the
/// family's kind and help, its label within the family, and its value now.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    /// The family's name (`tda_agent_batches_total`).
    pub family: &'static str,
    /// Counter, or gauge.
    pub kind: Kind,
    /// The family's help: the `families` line of the declaration, else the counter's doc.
    pub help: &'static str,
    /// The counter's label within its family, if it shares one (`outcome="sent"`).
    pub label: Option<(&'static str, &'static str)>,
    /// The value now.
    pub value: f64,
}

impl Exposition {
    /// Writes counters into their families, each family once, in the order each first appears.
    pub fn exported(&mut self, rows: &[Exported]) {
        let mut written: Vec<&str> = Vec::new();
        for r in rows {
            if written.contains(&r.family) {
                continue;
            }
            written.push(r.family);
            let mut family = self.family(r.family, r.kind, r.help);
            for m in rows.iter().filter(|m| m.family == r.family) {
                let labels: Vec<(&str, &str)> = m.label.into_iter().collect();
                family.sample(&labels, m.value);
            }
        }
    }
}

/// Declares a set of counters once: the struct of atomics (with any other fields after
/// `extra`), its snapshot of plain numbers, field for field, with `snapshot()`, and how each
/// is exported on `/metrics` with `exported()`: `field => "family"` (a counter; its doc is the
/// help), `=> gauge "family"`, and `["label" = "value"]` for a counter that shares a family
/// with others, whose help a `families { "family" => "help", }` line gives. A field without
/// `=>` is not exported. The calling crate needs `serde` (the snapshot derives `Serialize`).
#[macro_export]
macro_rules! counters {
    (@kind gauge) => { $crate::metrics::Kind::Gauge };
    (@kind) => { $crate::metrics::Kind::Counter };
    (@label $k:literal $v:literal) => { Some(($k, $v)) };
    (@label) => { None };
    (
        $(#[$meta:meta])* pub struct $name:ident;
        $(#[$snap_meta:meta])* pub struct $snap:ident;
        { $( $(#[doc = $doc:literal])* $field:ident
            $( => $($gauge:ident)? $family:literal $([$lk:literal = $lv:literal])? )? , )* }
        $( families { $( $fam:literal => $fhelp:literal, )* } )?
        $( extra { $( $(#[doc = $edoc:literal])* $efield:ident : $ety:ty, )* } )?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        pub struct $name {
            $( $(#[doc = $doc])* pub $field: std::sync::atomic::AtomicU64, )*
            $($( $(#[doc = $edoc])* pub $efield: $ety, )*)?
        }

        $(#[$snap_meta])*
        #[derive(Debug, Clone, Copy, serde::Serialize, PartialEq, Eq)]
        pub struct $snap {
            $( $(#[doc = $doc])* pub $field: u64, )*
        }

        impl $name {
            /// Reads every counter.
            pub fn snapshot(&self) -> $snap {
                $snap {
                    $( $field: self.$field.load(std::sync::atomic::Ordering::Relaxed), )*
                }
            }

            /// Every exported counter now, as its declaration says.
            pub fn exported(&self) -> Vec<$crate::metrics::Exported> {
                #[allow(unused)]
                fn family_help(family: &str) -> Option<&'static str> {
                    match family {
                        $($( $fam => Some($fhelp), )*)?
                        _ => None,
                    }
                }
                #[allow(unused_mut)]
                let mut rows = Vec::new();
                $({
                    #[allow(unused)]
                    let doc: &'static str = concat!($($doc),*);
                    $(
                        rows.push($crate::metrics::Exported {
                            family: $family,
                            kind: $crate::counters!(@kind $($gauge)?),
                            help: family_help($family).unwrap_or(doc.trim_start()),
                            label: $crate::counters!(@label $($lk $lv)?),
                            value: self.$field.load(std::sync::atomic::Ordering::Relaxed) as f64,
                        });
                    )?
                })*
                rows
            }
        }
    };
}

#[cfg(test)]
mod declared {
    crate::counters! {
        /// Counters of a test.
        pub struct Things;
        /// Their snapshot.
        pub struct ThingsSnapshot;
        {
            /// Things sent.
            sent => "x_things_total" ["outcome" = "sent"],
            /// Things pending now,
            /// a gauge.
            pending => gauge "x_pending",
            /// Things dropped.
            dropped => "x_things_total" ["outcome" = "dropped"],
            /// Counted, not exported.
            internal,
        }
        families {
            "x_things_total" => "Things, by outcome.",
        }
    }

    #[test]
    fn counters_are_exported_as_declared() {
        use std::sync::atomic::Ordering;
        let t = Things::default();
        t.sent.store(3, Ordering::Relaxed);
        t.dropped.store(1, Ordering::Relaxed);
        t.pending.store(2, Ordering::Relaxed);
        t.internal.store(9, Ordering::Relaxed);
        let mut e = super::Exposition::new();
        e.exported(&t.exported());
        assert_eq!(
            e.finish(),
            "# HELP x_things_total Things, by outcome.\n# TYPE x_things_total counter\n\
             x_things_total{outcome=\"sent\"} 3\nx_things_total{outcome=\"dropped\"} 1\n\
             # HELP x_pending Things pending now, a gauge.\n# TYPE x_pending gauge\nx_pending 2\n"
        );
        assert_eq!(t.snapshot().internal, 9, "still counted");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render_in_the_text_format() {
        let mut e = Exposition::new();
        e.counter("tda_x_total", "Things.\nMore", 3);
        e.family("tda_state", Kind::Gauge, "State.")
            .sample(&[("rule", "a\"b\\c\nd")], 1.0)
            .sample(&[("rule", "e"), ("profile", "p")], 0.5);
        let h = Histogram::new(&[1.0, 10.0]);
        for v in [0.5, 1.0, 3.0, 20.0] {
            h.observe(v);
        }
        e.histogram("tda_size", "Sizes.", &[(&[("kind", "k")], &h)]);
        assert_eq!(
            e.finish(),
            "# HELP tda_x_total Things.\\nMore\n# TYPE tda_x_total counter\ntda_x_total 3\n\
             # HELP tda_state State.\n# TYPE tda_state gauge\n\
             tda_state{rule=\"a\\\"b\\\\c\\nd\"} 1\ntda_state{rule=\"e\",profile=\"p\"} 0.5\n\
             # HELP tda_size Sizes.\n# TYPE tda_size histogram\n\
             tda_size_bucket{kind=\"k\",le=\"1\"} 2\ntda_size_bucket{kind=\"k\",le=\"10\"} 3\n\
             tda_size_bucket{kind=\"k\",le=\"+Inf\"} 4\ntda_size_sum{kind=\"k\"} 24.5\n\
             tda_size_count{kind=\"k\"} 4\n"
        );
    }

    #[test]
    fn process_metrics_describe_this_process() {
        let mut e = Exposition::new();
        e.process();
        let text = e.finish();
        let value = |name: &str| -> f64 {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} missing in {text}"));
            line[name.len() + 1..].parse().unwrap()
        };
        assert!(value("process_resident_memory_bytes") > 1e6);
        assert!(value("process_open_fds") >= 3.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = value("process_start_time_seconds");
        assert!(
            start <= now && start > now - 3600.0,
            "start {start}, now {now}"
        );
        assert!(value("process_cpu_seconds_total") >= 0.0);
    }
}
