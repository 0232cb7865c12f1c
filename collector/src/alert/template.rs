//! Templates for annotations and webhook bodies: `{{ name }}` placeholders filled from a map of
//! values (`value`, `threshold`, `labels.severity` …); unknown names are left as written, so a
//! typo shows in the notification instead of vanishing.

use std::collections::BTreeMap;

/// Fills every `{{ name }}` of `text` whose name is in `values` (`escape` applied to the value).
pub fn render(text: &str, values: &BTreeMap<String, String>, escape: fn(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let name = after[..close].trim();
        match values.get(name) {
            Some(v) => out.push_str(&escape(v)),
            None => out.push_str(&rest[open..open + 2 + close + 2]),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// No escaping (annotations).
pub fn plain(s: &str) -> String {
    s.to_string()
}

/// Escaped for inside a JSON string (webhook body templates).
pub fn json_string(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted[1..quoted.len().saturating_sub(1)].to_string()
}

/// A number as a person reads it: integers without decimals, else up to 4 significant decimals.
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_known_names_and_keeps_the_rest() {
        let values = BTreeMap::from([
            ("value".to_string(), "0.12".to_string()),
            ("labels.severity".to_string(), "page \"now\"".to_string()),
        ]);
        assert_eq!(
            render(
                "error rate {{value}} ({{ labels.severity }}) {{ nope }} {{",
                &values,
                plain
            ),
            "error rate 0.12 (page \"now\") {{ nope }} {{"
        );
        assert_eq!(
            render("{\"text\": \"{{labels.severity}}\"}", &values, json_string),
            "{\"text\": \"page \\\"now\\\"\"}"
        );
        assert_eq!(
            (number(3.0), number(0.123456), number(2.5)),
            ("3".into(), "0.1235".into(), "2.5".into())
        );
    }
}
