//! `tda`, the operator CLI: reads stats and manages profiles through the collector's API.

use std::fmt::Write as _;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

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
    command: Command,
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
enum Command {
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
        /// events | samples
        #[arg(long, default_value = "events")]
        data: String,
        /// csv | parquet
        #[arg(long, default_value = "csv")]
        format: String,
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
        /// usage | performance | predictive | behavioral
        #[arg(value_parser = ["usage", "performance", "predictive", "behavioral"])]
        kind: String,
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
enum ReportCommand {
    /// Reports made, newest first.
    List,
    /// Print a report (`md`, `html` or `json`).
    Show {
        /// Its id, as `tda report list` prints it (`profile/report/20261201T080000Z`).
        id: String,
        /// md | html | json
        #[arg(long, default_value = "md")]
        format: String,
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
enum SilenceCommand {
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
struct RangeArgs {
    /// Start: a duration before now (`1h`, `7d`), RFC 3339 or epoch ms.
    #[arg(long, default_value = "1h")]
    since: String,
    /// End: RFC 3339, epoch ms or a duration before now; now when absent.
    #[arg(long)]
    until: Option<String>,
}

impl RangeArgs {
    fn query(&self) -> Vec<(&'static str, String)> {
        vec![
            ("from", self.since.clone()),
            ("to", self.until.clone().unwrap_or_else(|| "0s".into())),
        ]
    }
}

/// Filters on events (and on the agent of host series).
#[derive(Debug, clap::Args)]
struct FilterArgs {
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
    fn query(&self) -> Vec<(&'static str, String)> {
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
enum BehaviorCommand {
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
        /// ordered | strict | unordered
        #[arg(long, default_value = "ordered")]
        mode: String,
    },
    /// Cohort retention (day or week).
    Retention {
        /// day | week
        #[arg(long, default_value = "day")]
        period: String,
    },
}

#[derive(Debug, Subcommand)]
enum ProfileCommand {
    /// Create a profile (written as a TOML file by the collector).
    Create {
        /// Profile name.
        #[arg(long)]
        name: String,
        /// usage | performance | predictive | behavioral
        #[arg(long = "type")]
        kind: String,
        /// Seconds between samples.
        #[arg(long, default_value_t = 60)]
        collection_interval: u64,
        /// Days data is kept.
        #[arg(long, default_value_t = 30)]
        retention_period: u64,
        /// minute | hour | day
        #[arg(long, default_value = "minute")]
        aggregation_level: String,
    },
    /// List profiles and profile files that failed to load.
    List,
}

/// Runs one CLI command and returns what to print.
pub fn run(cli: Cli) -> anyhow::Result<String> {
    // Reads carry the token when one is given (admin tokens also read).
    let api = Api::new(&cli.server)?.reading_with(cli.token.as_deref());
    match cli.command {
        Command::Detect {
            input,
            output,
            params,
        } => crate::offline::detect(&input, &output, params.as_deref()),
        Command::Forecast {
            input,
            horizon,
            output,
        } => crate::offline::forecast_csv(&input, &horizon, &output),
        Command::Export {
            data,
            format,
            output,
            range,
            filter,
            quiet,
        } => {
            let ask = crate::export_cli::Ask {
                data,
                format,
                output,
                range: range.query(),
                filter: filter.query(),
                progress: !quiet,
            };
            crate::export_cli::run(&api.base, api.token.as_deref(), &ask)
        }
        Command::Stats {
            kind,
            since,
            until,
            profile,
        } => {
            let scheduled = matches!(kind.as_str(), "behavioral" | "predictive")
                && since.is_none()
                && until.is_none();
            let mut query = Vec::new();
            if !scheduled {
                query.push(("from", since.unwrap_or_else(|| "24h".into())));
                query.push(("to", until.unwrap_or_else(|| "0s".into())));
            }
            if let Some(p) = profile {
                query.push(("profile", p));
            }
            let v = api.get(&format!("/api/v1/stats/{kind}"), &query)?;
            Ok(if cli.json {
                pretty(&v)
            } else if kind == "performance" {
                performance_table(&v)
            } else if kind == "predictive" {
                predictive_table(&v)
            } else if kind == "behavioral" {
                behavioral_table(&v)
            } else {
                usage_table(&v)
            })
        }
        Command::Query {
            series,
            range,
            step,
            agg,
            filter,
        } => {
            let mut q = range.query();
            q.extend(filter.query());
            q.push(("series", series));
            q.push(("step", step));
            if let Some(a) = agg {
                q.push(("agg", a));
            }
            let v = api.get("/api/v1/query", &q)?;
            Ok(if cli.json {
                pretty(&v)
            } else {
                series_table(&v)
            })
        }
        Command::Behavior {
            command,
            since,
            until,
        } => {
            let mut q = vec![
                ("from", since),
                ("to", until.unwrap_or_else(|| "0s".into())),
            ];
            let path = match command {
                BehaviorCommand::Sessions => "/api/v1/sessions",
                BehaviorCommand::Journeys { start, length } => {
                    q.extend(start.map(|s| ("start", s)));
                    q.push(("length", length.to_string()));
                    "/api/v1/journeys"
                }
                BehaviorCommand::Funnel {
                    steps,
                    window,
                    mode,
                } => {
                    q.extend([("steps", steps), ("window", window), ("mode", mode)]);
                    "/api/v1/funnels"
                }
                BehaviorCommand::Retention { period } => {
                    q.push(("period", period));
                    "/api/v1/retention"
                }
            };
            let v = api.get(path, &q)?;
            Ok(if cli.json {
                pretty(&v)
            } else {
                behavior_table(path, &v)
            })
        }
        Command::Events {
            range,
            filter,
            limit,
            cursor,
        } => {
            let mut q = range.query();
            q.extend(filter.query());
            q.push(("limit", limit.to_string()));
            if let Some(c) = cursor {
                q.push(("cursor", c));
            }
            let v = api.get("/api/v1/events", &q)?;
            Ok(if cli.json {
                pretty(&v)
            } else {
                events_table(&v)
            })
        }
        Command::Profile {
            command:
                ProfileCommand::Create {
                    name,
                    kind,
                    collection_interval,
                    retention_period,
                    aggregation_level,
                },
        } => {
            let body = json!({"name": name, "type": kind, "settings": {
                "collection_interval": collection_interval, "retention_period": retention_period,
                "aggregation_level": aggregation_level }});
            let v = api
                .with_token(cli.token.as_deref())?
                .post("/api/v1/profiles", &body)?;
            Ok(if cli.json {
                pretty(&v)
            } else {
                format!("Profile created: {} ({})\n", s(&v["id"]), s(&v["file"]))
            })
        }
        Command::Alerts => {
            let v = api.get("/api/v1/alerts", &[])?;
            Ok(if cli.json {
                pretty(&v)
            } else {
                alerts_table(&v)
            })
        }
        Command::Report { command } => match command {
            ReportCommand::List => {
                let v = api.get("/api/v1/reports", &[])?;
                Ok(if cli.json {
                    pretty(&v)
                } else {
                    reports_table(&v)
                })
            }
            ReportCommand::Show { id, format } => {
                api.text(&format!("/api/v1/reports/{id}.{format}"))
            }
            ReportCommand::Run { profile, report } => {
                let v = api.with_token(cli.token.as_deref())?.post_query(
                    "/api/v1/reports/run",
                    &[("profile", profile), ("report", report)],
                )?;
                Ok(if cli.json {
                    pretty(&v)
                } else {
                    format!("Report written: {}\n", s(&v["id"]))
                })
            }
        },
        Command::Silence { command } => {
            let v = match command {
                SilenceCommand::Add {
                    matchers,
                    duration,
                    comment,
                    by,
                } => {
                    let body = json!({"matchers": matchers, "duration": duration, "comment": comment, "created_by": by});
                    api.with_token(cli.token.as_deref())?
                        .post("/api/v1/silences", &body)?
                }
                SilenceCommand::List => api.get("/api/v1/silences", &[])?,
                SilenceCommand::Expire { id } => api
                    .with_token(cli.token.as_deref())?
                    .delete(&format!("/api/v1/silences/{id}"))?,
            };
            Ok(if cli.json {
                pretty(&v)
            } else {
                silences_table(&v)
            })
        }
        Command::Profile {
            command: ProfileCommand::List,
        } => {
            let v = api.get("/api/v1/profiles", &[])?;
            Ok(if cli.json {
                pretty(&v)
            } else {
                profiles_table(&v)
            })
        }
    }
}

struct Api {
    client: reqwest::blocking::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    fn new(base: &str) -> anyhow::Result<Self> {
        let client = tda_daemon::tls::blocking_client_builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()?;
        Ok(Api {
            client,
            base: base.trim_end_matches('/').to_string(),
            token: None,
        })
    }

    /// The same API sending an admin token (`--token` or `TDA_ADMIN_TOKEN`).
    fn reading_with(mut self, token: Option<&str>) -> Api {
        self.token = token.map(String::from);
        self
    }

    fn with_token(&self, token: Option<&str>) -> anyhow::Result<Api> {
        let Some(t) = token else {
            bail!("this command needs the admin token: --token or TDA_ADMIN_TOKEN");
        };
        Ok(Api {
            client: self.client.clone(),
            base: self.base.clone(),
            token: Some(t.to_string()),
        })
    }

    fn authorized(
        &self,
        req: reqwest::blocking::RequestBuilder,
    ) -> reqwest::blocking::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    fn text(&self, path: &str) -> anyhow::Result<String> {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .with_context(|| format!("cannot reach the collector at {}", self.base))?;
        if !resp.status().is_success() {
            return answer(resp).map(|_| String::new());
        }
        Ok(resp.text()?)
    }

    fn post_query(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        let req = self.authorized(
            self.client
                .post(format!("{}{path}", self.base))
                .query(query),
        );
        answer(
            req.send()
                .with_context(|| format!("cannot reach the collector at {}", self.base))?,
        )
    }

    fn delete(&self, path: &str) -> anyhow::Result<Value> {
        let req = self.authorized(self.client.delete(format!("{}{path}", self.base)));
        answer(
            req.send()
                .with_context(|| format!("cannot reach the collector at {}", self.base))?,
        )
    }

    fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        let req = self.authorized(self.client.get(format!("{}{path}", self.base)).query(query));
        answer(
            req.send()
                .with_context(|| format!("cannot reach the collector at {}", self.base))?,
        )
    }

    fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let req = self.authorized(self.client.post(format!("{}{path}", self.base)).json(body));
        answer(
            req.send()
                .with_context(|| format!("cannot reach the collector at {}", self.base))?,
        )
    }
}

fn answer(resp: reqwest::blocking::Response) -> anyhow::Result<Value> {
    let status = resp.status();
    let v: Value = resp.json().unwrap_or(Value::Null);
    if !status.is_success() {
        bail!(
            "{}: {}",
            status.as_u16(),
            v["error"].as_str().unwrap_or("request failed")
        );
    }
    Ok(v)
}

fn alerts_table(v: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:<24} {:<9} {:>12}  summary",
        "profile", "rule", "state", "value"
    );
    for a in v["alerts"].as_array().into_iter().flatten() {
        let state = match (&a["silenced_by"], a["inhibited"].as_bool()) {
            (Value::String(id), _) => format!("{} (silenced {id})", s(&a["state"])),
            (_, Some(true)) => format!("{} (inhibited)", s(&a["state"])),
            _ => s(&a["state"]),
        };
        let summary = a["error"].as_str().map_or_else(
            || s(&a["annotations"]["summary"]),
            |e| format!("error: {e}"),
        );
        let _ = writeln!(
            out,
            "{:<16} {:<24} {:<9} {:>12}  {summary}",
            s(&a["profile"]),
            s(&a["rule"]),
            state,
            num(&a["value"], 3)
        );
    }
    let n = &v["notifications"];
    let _ = writeln!(
        out,
        "notifications: {} sent, {} retried, {} dropped; {} waiting",
        s(&n["sent"]),
        s(&n["retried"]),
        s(&n["dropped"]),
        s(&v["outbox"])
    );
    out
}

fn reports_table(v: &Value) -> String {
    let mut out = String::new();
    for r in v["reports"].as_array().into_iter().flatten() {
        let first = r["summary"]
            .as_array()
            .and_then(|a| a.first())
            .map(s)
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<56} {} to {}  {first}",
            s(&r["id"]),
            s(&r["from"]),
            s(&r["to"])
        );
    }
    out
}

fn silences_table(v: &Value) -> String {
    let one = v.get("id").map(|_| vec![v.clone()]);
    let list = one.unwrap_or_else(|| v["silences"].as_array().cloned().unwrap_or_default());
    let mut out = String::new();
    for x in list {
        let until = time(&x["ends_at"]);
        let matchers: Vec<String> = x["matchers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .collect();
        let _ = writeln!(
            out,
            "{:<8} until {until}  {}  {}",
            s(&x["id"]),
            matchers.join(", "),
            s(&x["comment"])
        );
    }
    out
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn num(v: &Value, decimals: usize) -> String {
    v.as_f64().map_or("-".into(), |x| format!("{x:.decimals$}"))
}

fn latency_line(out: &mut String, l: &Value) {
    let (p50, p95, p99) = (num(&l["p50"], 1), num(&l["p95"], 1), num(&l["p99"], 1));
    let _ = writeln!(out, "  latency ms      p50 {p50}  p95 {p95}  p99 {p99}");
}

fn behavior_table(path: &str, v: &Value) -> String {
    let mut out = String::new();
    match path {
        "/api/v1/funnels" => {
            let _ = writeln!(
                out,
                "{:<24} {:>8} {:>11} {:>9} {:>14}",
                "step", "users", "conversion", "drop-off", "median time"
            );
            for st in v["funnel"]["steps"].as_array().into_iter().flatten() {
                let pct = |k: &str| format!("{:.1} %", st[k].as_f64().unwrap_or(0.0) * 100.0);
                let time = st["median_time_ms"]
                    .as_i64()
                    .map_or("-".into(), |ms| format!("{:.1} min", ms as f64 / 60_000.0));
                let _ = writeln!(
                    out,
                    "{:<24} {:>8} {:>11} {:>9} {:>14}",
                    s(&st["step"]),
                    s(&st["users"]),
                    pct("conversion"),
                    pct("drop_off"),
                    time
                );
            }
        }
        "/api/v1/retention" => {
            let _ = writeln!(out, "cohort start              users  retention by period");
            for c in v["cohorts"].as_array().into_iter().flatten() {
                let cells: Vec<String> = c["retention"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| format!("{:.0}%", r.as_f64().unwrap_or(0.0) * 100.0))
                    .collect();
                let start = tda_schema::Timestamp(c["start_ms"].as_i64().unwrap_or(0)).to_rfc3339();
                let _ = writeln!(
                    out,
                    "{start:<25} {:>5}  {}",
                    s(&c["users"]),
                    cells.join(" ")
                );
            }
            let _ = writeln!(
                out,
                "DAU {}  WAU {}  MAU {}",
                s(&v["dau"]),
                s(&v["wau"]),
                s(&v["mau"])
            );
        }
        "/api/v1/journeys" => {
            for p in v["top_paths"].as_array().into_iter().flatten() {
                let path: Vec<String> = p["path"].as_array().into_iter().flatten().map(s).collect();
                let _ = writeln!(out, "{:>7}  {}", s(&p["sessions"]), path.join(" → "));
            }
        }
        _ => {
            for (k, val) in v.as_object().into_iter().flatten() {
                let _ = writeln!(out, "{k:<20} {}", s(val));
            }
        }
    }
    out
}

/// An epoch-ms field as RFC 3339.
fn time(v: &Value) -> String {
    v.as_i64()
        .map_or("-".into(), |t| tda_schema::Timestamp(t).to_rfc3339())
}

/// A share (0-1) as a percentage.
fn percent(v: &Value) -> String {
    v.as_f64()
        .map_or("-".into(), |x| format!("{:.1} %", 100.0 * x))
}

fn behavioral_table(v: &Value) -> String {
    let mut out = String::new();
    let profile = v["profile"].as_str().unwrap_or("no behavioral profile");
    let _ = writeln!(
        out,
        "Behavior ({profile}) {} .. {}",
        time(&v["from"]),
        time(&v["to"])
    );
    if v["computed_at"].is_i64() {
        let _ = writeln!(out, "  computed at     {}", time(&v["computed_at"]));
    }
    let a = &v["active_users"];
    let _ = writeln!(
        out,
        "  active users    {} last day, {} last week, {} last 30 days",
        s(&a["dau"]),
        s(&a["wau"]),
        s(&a["mau"])
    );
    let x = &v["sessions"];
    let _ = writeln!(
        out,
        "  sessions        {} by {} users, {} events each, bounce rate {}",
        s(&x["sessions"]),
        s(&x["users"]),
        num(&x["events_per_session"], 1),
        percent(&x["bounce_rate"])
    );
    for f in v["funnels"].as_array().into_iter().flatten() {
        let window = f["window_ms"]
            .as_i64()
            .map_or("-".into(), |w| format!("{} min", w / 60_000));
        let _ = writeln!(
            out,
            "\n  FUNNEL {} ({}, within {window})",
            s(&f["name"]),
            s(&f["mode"])
        );
        let _ = writeln!(out, "  {:<24} {:>8} {:>11}", "STEP", "USERS", "CONVERSION");
        for step in f["funnel"]["steps"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "  {:<24} {:>8} {:>11}",
                s(&step["step"]),
                s(&step["users"]),
                percent(&step["conversion"])
            );
        }
    }
    let segments = &v["segments"];
    if let Some(rules) = segments["rules"].as_array().filter(|r| !r.is_empty()) {
        let _ = writeln!(out, "\n  {:<40} {:>8}  RULE", "SEGMENT", "USERS");
        for r in rules {
            let _ = writeln!(
                out,
                "  {:<40} {:>8}  {}",
                s(&r["name"]),
                s(&r["users"]),
                s(&r["rule"])
            );
        }
    }
    if let Some(clusters) = segments["segmentation"]["clusters"].as_array() {
        let _ = writeln!(
            out,
            "\n  {:>8} {:>7}  WHAT SETS THE CLUSTER APART",
            "USERS", "SHARE"
        );
        for c in clusters {
            let _ = writeln!(
                out,
                "  {:>8} {:>7}  {}",
                s(&c["users"]),
                percent(&c["share"]),
                s(&c["description"])
            );
        }
    }
    if let Some(paths) = v["top_paths"].as_array().filter(|p| !p.is_empty()) {
        let _ = writeln!(out, "\n  {:>8}  TOP PATH", "SESSIONS");
        for p in paths {
            let path: Vec<String> = p["path"].as_array().into_iter().flatten().map(s).collect();
            let _ = writeln!(out, "  {:>8}  {}", s(&p["sessions"]), path.join(" → "));
        }
    }
    out
}

fn predictive_table(v: &Value) -> String {
    let mut out = String::new();
    let profile = v["profile"]
        .as_str()
        .unwrap_or("no predictive profile: default metrics");
    let _ = writeln!(out, "Predictive ({profile}), step {} ms", s(&v["step_ms"]));
    let _ = writeln!(
        out,
        "{:<18} {:>7} {:<44} {:<36} {:>9}",
        "metric", "points", "trend", "forecast (mean over horizon)", "anomalies"
    );
    for m in v["metrics"].as_array().into_iter().flatten() {
        let trend = m["trend"]["summary"].as_str().unwrap_or("-");
        let trend = trend.split_once(": ").map_or(trend, |(_, t)| t);
        let forecast = format!(
            "{:.1} ({})",
            m["forecast"]["mean"].as_f64().unwrap_or(0.0),
            s(&m["forecast"]["model"])
        );
        let _ = writeln!(
            out,
            "{:<18} {:>7} {:<44} {:<36} {:>9}",
            s(&m["metric"]),
            s(&m["points"]),
            trend,
            forecast,
            s(&m["anomalies"]["count"])
        );
    }
    out
}

fn usage_table(v: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Usage {} .. {} ({} buckets{})",
        s(&v["range"]["from"]),
        s(&v["range"]["to"]),
        s(&v["aggregation_level"]),
        v["profile"]
            .as_str()
            .map(|p| format!(", profile {p}"))
            .unwrap_or_default()
    );
    let _ = writeln!(out, "  total requests  {}", s(&v["total_requests"]));
    let _ = writeln!(out, "  active users    {}", s(&v["active_users"]));
    let _ = writeln!(out, "  errors          {}", s(&v["errors"]));
    latency_line(&mut out, &v["latency_ms"]);
    let _ = writeln!(
        out,
        "\n  {:<24} {:>10} {:>8} {:>8}",
        "FEATURE", "REQUESTS", "USERS", "ERRORS"
    );
    for f in v["features"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:<24} {:>10} {:>8} {:>8}",
            s(&f["feature"]),
            s(&f["requests"]),
            s(&f["users"]),
            s(&f["errors"])
        );
    }
    out
}

fn performance_table(v: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Performance {} .. {}",
        s(&v["range"]["from"]),
        s(&v["range"]["to"])
    );
    let _ = writeln!(
        out,
        "  health          {} {}",
        s(&v["health"]["status"]),
        v["health"]["reasons"]
            .as_array()
            .map(|r| r.iter().map(s).collect::<Vec<_>>().join("; "))
            .unwrap_or_default()
    );
    let _ = writeln!(out, "  requests        {}", s(&v["requests"]));
    let _ = writeln!(
        out,
        "  error rate      {} %",
        v["error_rate"]
            .as_f64()
            .map_or("-".into(), |r| format!("{:.2}", r * 100.0))
    );
    latency_line(&mut out, &v["latency_ms"]);
    let _ = writeln!(out, "\n  {:<24} {:>8}", "ERROR", "COUNT");
    for e in v["top_errors"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "  {:<24} {:>8}", s(&e["error"]), s(&e["count"]));
    }
    let _ = writeln!(
        out,
        "\n  {:<16} {:>7} {:>6} {:>6} {:>6} {:>12}",
        "AGENT", "SAMPLES", "CPU%", "MEM%", "LOAD1", "PROC RSS MB"
    );
    for a in v["agents"].as_array().into_iter().flatten() {
        let avg = &a["average"];
        let rss = a["latest"]["process"]["rss_bytes"]
            .as_f64()
            .map_or("-".into(), |b| format!("{:.1}", b / 1048576.0));
        let _ = writeln!(
            out,
            "  {:<16} {:>7} {:>6} {:>6} {:>6} {:>12}",
            s(&a["agent_id"]),
            s(&a["samples"]),
            num(&avg["cpu_percent"], 1),
            num(&avg["mem_used_percent"], 1),
            num(&avg["load1"], 2),
            rss
        );
    }
    out
}

fn series_table(v: &Value) -> String {
    let mut out = format!(
        "{} ({}, step {} s)\n",
        s(&v["series"]),
        s(&v["agg"]),
        v["step_ms"].as_i64().unwrap_or(0) / 1000
    );
    for p in v["points"].as_array().into_iter().flatten() {
        let t = tda_schema::Timestamp(p["t"].as_i64().unwrap_or(0)).to_rfc3339();
        let _ = writeln!(out, "  {t:<26} {:>14}", num(&p["v"], 3));
    }
    out
}

fn events_table(v: &Value) -> String {
    let mut out = format!(
        "{:<26} {:<16} {:<18} {:>6} {:>10} {}\n",
        "TIME", "USER", "FEATURE", "STATUS", "LATENCY MS", "ERROR"
    );
    for e in v["events"].as_array().into_iter().flatten() {
        let t = tda_schema::Timestamp(e["timestamp"].as_i64().unwrap_or(0)).to_rfc3339();
        let _ = writeln!(
            out,
            "{t:<26} {:<16} {:<18} {:>6} {:>10} {}",
            s(&e["user_id"]),
            s(&e["feature"]),
            s(&e["status"]),
            num(&e["latency_ms"], 1),
            e["error"].as_str().unwrap_or("")
        );
    }
    if let Some(c) = v["next_cursor"].as_str() {
        let _ = writeln!(out, "next: --cursor {c}");
    }
    out
}

fn profiles_table(v: &Value) -> String {
    let mut out = format!(
        "{:<22} {:<24} {:<12} {:<7} {:>9} {:>10} {:<7} {}\n",
        "ID", "NAME", "TYPE", "STATUS", "INTERVAL", "RETENTION", "LEVEL", "FILE"
    );
    for p in v["profiles"].as_array().into_iter().flatten() {
        let st = &p["settings"];
        let file = p["file"]
            .as_str()
            .and_then(|f| f.rsplit('/').next())
            .unwrap_or("-");
        let _ = writeln!(
            out,
            "{:<22} {:<24} {:<12} {:<7} {:>8}s {:>9}d {:<7} {file}",
            s(&p["id"]),
            s(&p["name"]),
            s(&p["type"]),
            s(&p["status"]),
            s(&st["collection_interval"]),
            s(&st["retention_period"]),
            s(&st["aggregation_level"])
        );
    }
    for e in v["errors"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "error: {} (the last good version, if any, stays in force)",
            s(e)
        );
    }
    if let Some(e) = v["config"]["last_error"].as_str() {
        let _ = writeln!(out, "config error: {e} (the config in force stays)");
    }
    for f in v["config"]["restart_needed"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let _ = writeln!(
            out,
            "restart needed: `{}` changed in {}",
            s(f),
            s(&v["config"]["file"])
        );
    }
    let r = &v["reload"];
    let ok = if r["last_reload_ok"] == true {
        "ok"
    } else {
        "with errors"
    };
    let _ = writeln!(
        out,
        "last reload {ok} at {}; last fully successful at {}",
        s(&r["last_reload_at"]),
        s(&r["last_success_at"])
    );
    out
}
