//! The command line: clap's commands and options.

use clap::{Parser, Subcommand, ValueEnum};

/// The TD Analytics operator CLI.
#[derive(Debug, Parser)]
#[command(
    name = "tda",
    version,
    about = "The TD Analytics CLI: stats, queries, events, profiles, alerts and reports through \
             the collector's API; offline anomaly scores and forecasts of CSV files"
)]
pub struct Cli {
    /// Collector base URL.
    #[arg(
        long,
        env = "TDA_SERVER",
        default_value = "http://127.0.0.1:7300",
        global = true
    )]
    pub server: String,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Token: admin for commands that change state (profiles, silences, reports), and sent with
    /// reads too (an admin or read token) when the collector guards reading.
    #[arg(long, env = "TDA_ADMIN_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The offline commands: they read files, not the collector, so its options are hidden there.
const OFFLINE: [&str; 2] = ["detect", "forecast"];

impl Cli {
    /// Parses the command line (exits with clap's message on an error, or after --help).
    pub fn from_args() -> Cli {
        use clap::{CommandFactory, FromArgMatches};
        let mut command = Cli::command();
        // A subcommand that has an option of a global's name does not get the global: give the
        // offline ones hidden copies.
        let hidden: Vec<clap::Arg> = command
            .get_arguments()
            .filter(|a| a.is_global_set())
            .map(|a| a.clone().hide(true))
            .collect();
        for name in OFFLINE {
            command = command.mut_subcommand(name, |sub| sub.args(hidden.clone()));
        }
        Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit())
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Score every row of a `timestamp,value` CSV for anomalies (offline; no collector needed).
    Detect {
        /// Input CSV with a `timestamp,value` header.
        #[arg(long)]
        input: std::path::PathBuf,
        /// Output CSV: `timestamp,value,anomaly_score`, scores in [0,1], >= 0.5 flags.
        #[arg(long)]
        output: std::path::PathBuf,
        /// Detector parameters as JSON, for example `{"window": 96}` (docs/models.md).
        #[arg(long)]
        params: Option<String>,
    },
    /// Forecast a `timestamp,value` CSV (offline; no collector needed).
    Forecast {
        /// Input CSV with a `timestamp,value` header.
        #[arg(long)]
        input: std::path::PathBuf,
        /// How far ahead: steps (`48`) or a duration (`2d`, `36h`).
        #[arg(long)]
        horizon: String,
        /// Output CSV: `timestamp,forecast,lower,upper` (95 % interval), `horizon` rows.
        #[arg(long)]
        output: std::path::PathBuf,
    },
    /// Download events or host samples of a time range as CSV or Parquet, with a progress bar;
    /// checks that every row arrived.
    Export {
        /// What to export.
        #[arg(long, value_enum, default_value_t = Data::Events)]
        data: Data,
        /// The file's format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
        /// The file to write.
        #[arg(long)]
        output: std::path::PathBuf,
        #[command(flatten)]
        range: RangeArgs,
        #[command(flatten)]
        filter: FilterArgs,
        /// No progress bar (for scripts).
        #[arg(long)]
        quiet: bool,
    },
    /// Show analytics statistics of a type (usage, performance, predictive or behavioral).
    Stats {
        /// The statistics' type.
        #[arg(value_enum)]
        kind: ProfileType,
        /// Start: a duration before now (`1h`, `7d`), RFC 3339 or epoch ms; 24h when absent
        /// (behavioral and predictive without --since or --until: the profile's scheduled run,
        /// over its own lookback).
        #[arg(long)]
        since: Option<String>,
        /// End: RFC 3339, epoch ms or a duration before now; now when absent.
        #[arg(long)]
        until: Option<String>,
        /// Profile whose aggregation level the series uses (behavioral, predictive: whose run).
        #[arg(long)]
        profile: Option<String>,
    },
    /// A series bucketed by a step: requests, errors, latency_ms, users, host.*, process.*.
    Query {
        /// Series name, for example `requests`, `latency_ms`, `host.cpu_percent`.
        series: String,
        #[command(flatten)]
        range: RangeArgs,
        /// Step, for example `1m`, `1h`.
        #[arg(long, default_value = "1m")]
        step: String,
        /// count, sum, avg, min, max, rate, p50, p95, p99 or distinct (default by series).
        #[arg(long)]
        agg: Option<String>,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Behavioral analyses: sessions, journeys, a funnel, or retention.
    Behavior {
        #[command(subcommand)]
        command: BehaviorCommand,
        /// Start: a duration before now (`7d`), RFC 3339 or epoch ms.
        #[arg(long, default_value = "7d", global = true)]
        since: String,
        /// End: RFC 3339, epoch ms or a duration before now; now when absent.
        #[arg(long, global = true)]
        until: Option<String>,
    },
    /// Raw events, oldest first, a page at a time.
    Events {
        #[command(flatten)]
        range: RangeArgs,
        #[command(flatten)]
        filter: FilterArgs,
        /// Events per page (1-1000).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// The `next` cursor a previous page printed.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Manage analytics profiles.
    Profile {
        #[command(subcommand)]
        command: ProfileCommand,
    },
    /// Alerts and their state (pending, firing, resolved), silenced or inhibited.
    Alerts,
    /// Scheduled reports: list, show one, run one now (admin token).
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Silence alerts: add (admin token), list, expire (admin token).
    Silence {
        #[command(subcommand)]
        command: SilenceCommand,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ReportCommand {
    /// Reports made, newest first.
    List,
    /// Print a report (`md`, `html` or `json`).
    Show {
        /// Its id, as `tda report list` prints it (`profile/report/20261201T080000Z`).
        id: String,
        /// The file's format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
        format: ReportFormat,
    },
    /// Make a report now, over the period that ends now.
    Run {
        /// Profile id.
        #[arg(long)]
        profile: String,
        /// Report name in the profile.
        #[arg(long)]
        report: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SilenceCommand {
    /// Silence alerts matching every `--matcher` (`alertname=HighErrors`, `severity=~crit*`).
    Add {
        /// A label matcher; repeat for more.
        #[arg(long = "matcher", required = true)]
        matchers: Vec<String>,
        /// How long, from now.
        #[arg(long = "for", default_value = "1h")]
        duration: String,
        /// Why.
        #[arg(long, default_value = "")]
        comment: String,
        /// Who.
        #[arg(long, default_value = "tda")]
        by: String,
    },
    /// List silences.
    List,
    /// End a silence now.
    Expire {
        /// Its id.
        id: String,
    },
}

/// A time range.
#[derive(Debug, clap::Args)]
pub(crate) struct RangeArgs {
    /// Start: a duration before now (`1h`, `7d`), RFC 3339 or epoch ms.
    #[arg(long, default_value = "1h")]
    since: String,
    /// End: RFC 3339, epoch ms or a duration before now; now when absent.
    #[arg(long)]
    until: Option<String>,
}

impl RangeArgs {
    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        vec![
            ("from", self.since.clone()),
            ("to", self.until.clone().unwrap_or_else(|| "0s".into())),
        ]
    }
}

/// Filters on events (and on the agent of host series).
#[derive(Debug, clap::Args)]
pub(crate) struct FilterArgs {
    /// Only this feature.
    #[arg(long)]
    feature: Option<String>,
    /// Only this user.
    #[arg(long)]
    user: Option<String>,
    /// Only this HTTP status.
    #[arg(long)]
    status: Option<u16>,
    /// Only this agent (host and process series).
    #[arg(long)]
    agent: Option<String>,
}

impl FilterArgs {
    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let pairs = [
            ("feature", self.feature.clone()),
            ("user", self.user.clone()),
            ("status", self.status.map(|s| s.to_string())),
            ("agent", self.agent.clone()),
        ];
        pairs
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect()
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum BehaviorCommand {
    /// Session counts and lengths.
    Sessions,
    /// Top paths and transitions.
    Journeys {
        /// Paths start at this feature (else at the session start).
        #[arg(long)]
        start: Option<String>,
        /// Steps per path.
        #[arg(long, default_value_t = 4)]
        length: usize,
    },
    /// A funnel: `--steps login,search,export`.
    Funnel {
        /// Comma-separated features, in order.
        #[arg(long)]
        steps: String,
        /// Conversion window after the first step.
        #[arg(long, default_value = "1d")]
        window: String,
        /// How steps must follow each other.
        #[arg(long, value_enum, default_value_t = FunnelMode::Ordered)]
        mode: FunnelMode,
    },
    /// Cohort retention (day or week).
    Retention {
        /// The cohorts' period.
        #[arg(long, value_enum, default_value_t = Period::Day)]
        period: Period,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProfileCommand {
    /// Create a profile (written as a TOML file by the collector).
    Create {
        /// Profile name.
        #[arg(long)]
        name: String,
        /// The profile's type.
        #[arg(long = "type", value_enum)]
        kind: ProfileType,
        /// Seconds between samples.
        #[arg(long, default_value_t = 60)]
        collection_interval: u64,
        /// Days data is kept.
        #[arg(long, default_value_t = 30)]
        retention_period: u64,
        /// Bucket width of its series.
        #[arg(long, value_enum, default_value_t = Level::Minute)]
        aggregation_level: Level,
    },
    /// List profiles and profile files that failed to load.
    List,
}

/// What `tda export` downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Data {
    /// Usage events.
    Events,
    /// Host and process samples.
    Samples,
}

/// The format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
}

/// A profile's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProfileType {
    /// Requests, users, features.
    Usage,
    /// Latency, errors, hosts.
    Performance,
    /// Trends, forecasts, anomalies, patterns.
    Predictive,
    /// Sessions, journeys, funnels, retention, segments.
    Behavioral,
}

/// A report file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReportFormat {
    /// Markdown.
    Md,
    /// HTML with SVG charts.
    Html,
    /// The report's JSON record.
    Json,
}

/// How a funnel's steps must follow each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FunnelMode {
    /// In order, other events allowed between.
    Ordered,
    /// In order, nothing between.
    Strict,
    /// In any order.
    Unordered,
}

/// A retention period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Period {
    /// UTC days.
    Day,
    /// Weeks from Monday.
    Week,
}

/// An aggregation level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Level {
    /// One-minute buckets.
    Minute,
    /// One-hour buckets.
    Hour,
    /// One-day buckets.
    Day,
}

/// A choice's name on the command line, which is also the API's.
pub(crate) fn name(choice: &impl ValueEnum) -> String {
    choice
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}
