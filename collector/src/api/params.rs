//! Typed query parameters: every accessor names its parameter in the error, so a bad request is
//! answered `400 {"error": "<name>: <what is wrong>"}`.

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;

use hyper::{Request, StatusCode};
use tda_daemon::Refusal;
use tda_schema::timestamp::{now_ms, parse_bound};

use crate::store::Filter;

/// A `400 Bad Request` refusal saying `why`.
pub fn bad(why: impl Into<String>) -> Refusal {
    Refusal::new(StatusCode::BAD_REQUEST, why)
}

/// The query parameters of a request.
pub struct Query(HashMap<String, String>);

impl Query {
    /// The request's query parameters (percent-decoded).
    pub fn of<B>(req: &Request<B>) -> Query {
        Query(tda_daemon::query(req))
    }

    /// The parameter `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Whether the parameter `name` is given.
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The parameter `name`, which must be given (`hint`, when not empty, says what it takes).
    pub fn required(&self, name: &str, hint: &str) -> Result<&str, Refusal> {
        self.get(name).ok_or_else(|| match hint {
            "" => bad(format!("{name}: required")),
            _ => bad(format!("{name}: required ({hint})")),
        })
    }

    /// The parameter `name` parsed as a `T`, if given.
    pub fn parsed<T>(&self, name: &str) -> Result<Option<T>, Refusal>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.get(name)
            .map(|v| v.parse().map_err(|e| bad(format!("{name}: {e}"))))
            .transpose()
    }

    /// The parameter `name` as a duration (`90s`, `1h 30m`), in ms, if given.
    pub fn duration_ms(&self, name: &str) -> Result<Option<i64>, Refusal> {
        self.get(name)
            .map(|text| {
                humantime::parse_duration(text)
                    .map(|d| d.as_millis() as i64)
                    .map_err(|e| bad(format!("{name}: `{text}`: {e}")))
            })
            .transpose()
    }

    /// The `from` and `to` bounds (defaults: `default_from` ago, and now), `from` before `to`.
    pub fn range(&self, default_from: &str) -> Result<(i64, i64), Refusal> {
        let now = now_ms();
        let bound = |name: &str, default: &str| {
            parse_bound(self.get(name).unwrap_or(default), now)
                .map_err(|e| bad(format!("{name}: {e}")))
        };
        let (from, to) = (bound("from", default_from)?, bound("to", "0s")?);
        if from >= to {
            return Err(bad("from: must be before to"));
        }
        Ok((from, to))
    }

    /// The event filters (`feature`, `user`, `status`, `label.KEY`) and the agent filter.
    pub fn filter(&self) -> Result<Filter, Refusal> {
        let status = match self.get("status") {
            Some(s) => Some(
                s.parse::<u16>()
                    .map_err(|_| bad(format!("status: `{s}` is not an HTTP status")))?,
            ),
            None => None,
        };
        let mut labels: Vec<(String, String)> = self
            .0
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("label.").map(|k| (k.to_string(), v.clone())))
            .collect();
        labels.sort();
        if labels.iter().any(|(k, _)| k.is_empty()) {
            return Err(bad("label.: a label filter is `label.KEY=VALUE`"));
        }
        let text = |name: &str| self.get(name).map(str::to_string);
        Ok(Filter {
            feature: text("feature"),
            user: text("user"),
            status,
            agent: text("agent"),
            labels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(q: &str) -> Query {
        Query::of(&Request::get(format!("/x?{q}")).body(()).unwrap())
    }

    #[test]
    fn errors_name_the_parameter() {
        let q = query("limit=ten&window=soon&status=abc&label.=x&from=2h&to=3h");
        let why = |r: Refusal| (r.status, r.message);
        assert_eq!(
            why(q.parsed::<usize>("limit").unwrap_err()),
            (
                StatusCode::BAD_REQUEST,
                "limit: invalid digit found in string".into()
            )
        );
        assert!(q
            .duration_ms("window")
            .unwrap_err()
            .message
            .starts_with("window: `soon`: "));
        assert_eq!(
            q.filter().unwrap_err().message,
            "status: `abc` is not an HTTP status"
        );
        assert_eq!(
            q.range("1h").unwrap_err().message,
            "from: must be before to"
        );
        assert_eq!(
            q.required("series", "").unwrap_err().message,
            "series: required"
        );
        assert_eq!(
            q.required("data", "events or samples").unwrap_err().message,
            "data: required (events or samples)"
        );
        assert_eq!(q.parsed::<usize>("absent").unwrap(), None);
    }

    #[test]
    fn a_filter_takes_every_label_sorted() {
        let f = query("feature=export&label.plan=pro&label.beta=true&agent=a1")
            .filter()
            .unwrap();
        assert_eq!(f.feature.as_deref(), Some("export"));
        assert_eq!(f.agent.as_deref(), Some("a1"));
        assert_eq!(
            f.labels,
            [
                ("beta".to_string(), "true".to_string()),
                ("plan".into(), "pro".into())
            ]
        );
    }
}
