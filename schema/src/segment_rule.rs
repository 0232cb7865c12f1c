//! Rule-based segments (`[[segment]]` in behavioral profiles): a name and a rule over a user's
//! behavior in the range, such as `sessions_7d >= 10 and uses(export)`. The grammar:
//!
//! ```text
//! rule  := all ("or" all)*
//! all   := one ("and" one)*
//! one   := "not" one | "(" rule ")" | "uses(" FEATURE ")" | MEASURE OP NUMBER
//! OP    := >= | <= | > | < | == | !=
//! ```
//!
//! Measures: `sessions`, `sessions_7d`, `events`, `events_7d`, `active_days`, `errors`,
//! `error_share`, `days_since_seen`, `session_minutes` (mean session length).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The measures a rule may compare.
pub const MEASURES: [&str; 9] = [
    "sessions",
    "sessions_7d",
    "events",
    "events_7d",
    "active_days",
    "errors",
    "error_share",
    "days_since_seen",
    "session_minutes",
];

/// A segment defined by a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    /// Segment name, unique in the profile.
    pub name: String,
    /// The rule users must meet, for example `sessions_7d >= 10 and uses(export)`.
    pub rule: String,
}

/// A parsed rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// Both.
    And(Box<Rule>, Box<Rule>),
    /// Either.
    Or(Box<Rule>, Box<Rule>),
    /// Not.
    Not(Box<Rule>),
    /// Used this feature in the range.
    Uses(String),
    /// A measure compared with a number.
    Compare(String, Op, f64),
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `>=`
    Ge,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `<`
    Lt,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    /// Whether `a OP b`.
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Ge => a >= b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Lt => a < b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }
}

fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<String>| {
        if !word.is_empty() {
            out.push(std::mem::take(word));
        }
    };
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            flush(&mut word, &mut out);
        } else if c == '(' || c == ')' {
            flush(&mut word, &mut out);
            out.push(c.to_string());
        } else if "<>=!".contains(c) {
            flush(&mut word, &mut out);
            let two = chars.get(i + 1) == Some(&'=');
            out.push(if two { format!("{c}=") } else { c.to_string() });
            i += usize::from(two);
        } else {
            word.push(c);
        }
        i += 1;
    }
    flush(&mut word, &mut out);
    out
}

struct Parser {
    toks: Vec<String>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.toks.get(self.at).map(String::as_str)
    }

    fn take(&mut self) -> Result<String, String> {
        let t = self
            .toks
            .get(self.at)
            .cloned()
            .ok_or("the rule ends early")?;
        self.at += 1;
        Ok(t)
    }

    fn expect(&mut self, want: &str) -> Result<(), String> {
        match self.take()? {
            t if t == want => Ok(()),
            t => Err(format!("expected `{want}`, found `{t}`")),
        }
    }

    fn rule(&mut self) -> Result<Rule, String> {
        let mut left = self.all()?;
        while self.peek() == Some("or") {
            self.at += 1;
            left = Rule::Or(Box::new(left), Box::new(self.all()?));
        }
        Ok(left)
    }

    fn all(&mut self) -> Result<Rule, String> {
        let mut left = self.one()?;
        while self.peek() == Some("and") {
            self.at += 1;
            left = Rule::And(Box::new(left), Box::new(self.one()?));
        }
        Ok(left)
    }

    fn one(&mut self) -> Result<Rule, String> {
        match self.take()?.as_str() {
            "not" => Ok(Rule::Not(Box::new(self.one()?))),
            "(" => {
                let r = self.rule()?;
                self.expect(")")?;
                Ok(r)
            }
            "uses" => {
                self.expect("(")?;
                let feature = self.take()?;
                self.expect(")")?;
                Ok(Rule::Uses(feature))
            }
            m if MEASURES.contains(&m) => {
                let op = match self.take()?.as_str() {
                    ">=" => Op::Ge,
                    "<=" => Op::Le,
                    ">" => Op::Gt,
                    "<" => Op::Lt,
                    "==" => Op::Eq,
                    "!=" => Op::Ne,
                    other => return Err(format!("`{other}` is not >=, <=, >, <, == or !=")),
                };
                let n = self.take()?;
                let v: f64 = n.parse().map_err(|_| format!("`{n}` is not a number"))?;
                Ok(Rule::Compare(m.to_string(), op, v))
            }
            other => Err(format!(
                "`{other}` is not `not`, `(`, `uses(FEATURE)` or a measure ({})",
                MEASURES.join(", ")
            )),
        }
    }
}

/// Checks every segment's rule and that names are unique; the error names the field.
pub fn validate_segments(segments: &[Segment]) -> Result<(), (String, String)> {
    let mut names = std::collections::HashSet::new();
    for (i, seg) in segments.iter().enumerate() {
        parse(&seg.rule).map_err(|e| (format!("segment[{i}].rule"), e))?;
        if !names.insert(seg.name.as_str()) {
            return Err((
                format!("segment[{i}].name"),
                format!("`{}` is used by another segment", seg.name),
            ));
        }
    }
    Ok(())
}

/// Parses a rule.
pub fn parse(text: &str) -> Result<Rule, String> {
    let mut p = Parser {
        toks: tokens(text),
        at: 0,
    };
    let rule = p.rule()?;
    match p.peek() {
        None => Ok(rule),
        Some(t) => Err(format!("unexpected `{t}` after a complete rule")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_precedence_and_refuses_nonsense() {
        let r = parse("sessions_7d >= 10 and uses(export) or not (errors>0)").unwrap();
        assert_eq!(
            r,
            Rule::Or(
                Box::new(Rule::And(
                    Box::new(Rule::Compare("sessions_7d".into(), Op::Ge, 10.0)),
                    Box::new(Rule::Uses("export".into()))
                )),
                Box::new(Rule::Not(Box::new(Rule::Compare(
                    "errors".into(),
                    Op::Gt,
                    0.0
                ))))
            )
        );
        assert!(parse("visits > 3").unwrap_err().contains("`visits` is not"));
        assert!(parse("events >").unwrap_err().contains("ends early"));
        assert!(parse("events > 3 4")
            .unwrap_err()
            .contains("unexpected `4`"));
        assert!(parse("events => 3").is_err());
    }
}
