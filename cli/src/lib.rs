//! `tda`, the operator CLI: reads stats and manages profiles through the collector's JSON API
//! (`client`), prints tables (`tables`) or the JSON; exports to files (`export`); scores and
//! forecasts CSV files offline (`offline`). A thin binary (`main.rs`) over this library.

#![forbid(unsafe_code)]

mod args;
mod client;
mod export;
mod offline;
mod tables;

use serde_json::json;
use tda_schema::answers::{Silence, SilencesAnswer};

pub use args::Cli;
use args::*;
use client::Api;
use tables::*;

/// An answer of the API read as its type (`tda_schema::answers`).
fn typed<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> anyhow::Result<T> {
    serde_json::from_value(v).map_err(|e| {
        let what = std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("answer");
        anyhow::anyhow!("the collector's answer is not a {what}: {e} (is it another version?)")
    })
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
        } => offline::detect(&input, &output, params.as_deref()),
        Command::Forecast {
            input,
            horizon,
            output,
        } => offline::forecast_csv(&input, &horizon, &output),
        Command::Export {
            data,
            format,
            output,
            range,
            filter,
            quiet,
        } => {
            let ask = export::Ask {
                data,
                format,
                output,
                range: range.query(),
                filter: filter.query(),
                progress: !quiet,
            };
            export::run(&api.base, api.token.as_deref(), &ask)
        }
        Command::Stats {
            kind,
            since,
            until,
            profile,
        } => {
            let scheduled = matches!(kind, ProfileType::Behavioral | ProfileType::Predictive)
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
            let v = api.get(&format!("/api/v1/stats/{}", name(&kind)), &query)?;
            if cli.json {
                return Ok(pretty(&v));
            }
            Ok(match kind {
                ProfileType::Performance => performance_table(&typed(v)?),
                ProfileType::Predictive => predictive_table(&typed(v)?),
                ProfileType::Behavioral => behavioral_table(&typed(v)?),
                ProfileType::Usage => usage_table(&typed(v)?),
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
                series_table(&typed(v)?)
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
                    q.extend([("steps", steps), ("window", window), ("mode", name(&mode))]);
                    "/api/v1/funnels"
                }
                BehaviorCommand::Retention { period } => {
                    q.push(("period", name(&period)));
                    "/api/v1/retention"
                }
            };
            let v = api.get(path, &q)?;
            if cli.json {
                return Ok(pretty(&v));
            }
            Ok(match path {
                "/api/v1/sessions" => sessions_table(&typed(v)?),
                "/api/v1/funnels" => funnel_table(&typed(v)?),
                "/api/v1/retention" => retention_table(&typed(v)?),
                _ => journeys_table(&typed(v)?),
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
                events_table(&typed(v)?)
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
            let body = json!({"name": name, "type": args::name(&kind), "settings": {
                "collection_interval": collection_interval, "retention_period": retention_period,
                "aggregation_level": args::name(&aggregation_level) }});
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
                alerts_table(&typed(v)?)
            })
        }
        Command::Report { command } => match command {
            ReportCommand::List => {
                let v = api.get("/api/v1/reports", &[])?;
                Ok(if cli.json {
                    pretty(&v)
                } else {
                    reports_table(&typed(v)?)
                })
            }
            ReportCommand::Show { id, format } => {
                api.text(&format!("/api/v1/reports/{id}.{}", name(&format)))
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
            if cli.json {
                return Ok(pretty(&v));
            }
            let list: Vec<Silence> = match v.get("silences") {
                Some(_) => typed::<SilencesAnswer>(v)?
                    .silences
                    .into_iter()
                    .map(|row| row.silence)
                    .collect(),
                None => vec![typed(v)?],
            };
            Ok(silences_table(&list))
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
