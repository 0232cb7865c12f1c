//! A report document as a self-contained HTML page (inline SVG charts, no scripts, no external
//! assets) and as Markdown.

use std::fmt::Write as _;

use serde_json::Value;

use super::svg::{escape, line_chart};

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() != 0.0 => format!("{f:.3}"),
            _ => n.to_string(),
        },
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

fn list<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v[key].as_array().into_iter().flatten()
}

fn points(c: &Value) -> Vec<(i64, f64)> {
    list(c, "points")
        .filter_map(|p| Some((p[0].as_i64()?, p[1].as_f64()?)))
        .collect()
}

fn band(c: &Value) -> Vec<(i64, f64, f64)> {
    list(c, "band")
        .filter_map(|p| Some((p[0].as_i64()?, p[1].as_f64()?, p[2].as_f64()?)))
        .collect()
}

fn heading(doc: &Value) -> String {
    format!(
        "{} report “{}” — {} ({} to {})",
        text(&doc["title"]),
        text(&doc["report"]),
        text(&doc["profile_name"]),
        text(&doc["from"]),
        text(&doc["to"])
    )
}

/// The HTML page.
pub fn html(doc: &Value) -> String {
    let mut out = String::new();
    let title = escape(&heading(doc));
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:760px;margin:2em auto;color:#222}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}figure{{margin:1.5em 0}}</style></head><body><h1>{title}</h1>"
    );
    out.push_str("<ul class=\"summary\">");
    for line in list(doc, "summary") {
        let _ = write!(out, "<li>{}</li>", escape(&text(line)));
    }
    out.push_str("</ul>");
    for c in list(doc, "charts") {
        let name = text(&c["title"]);
        let _ = write!(
            out,
            "<figure><figcaption>{}</figcaption>{}</figure>",
            escape(&name),
            line_chart(
                &name,
                &points(c),
                &band(c),
                &list(c, "marks")
                    .filter_map(Value::as_i64)
                    .collect::<Vec<_>>()
            )
        );
    }
    for t in list(doc, "tables") {
        let _ = write!(
            out,
            "<h2>{}</h2><table><thead><tr>",
            escape(&text(&t["title"]))
        );
        for col in list(t, "columns") {
            let _ = write!(out, "<th>{}</th>", escape(&text(col)));
        }
        out.push_str("</tr></thead><tbody>");
        for row in list(t, "rows") {
            out.push_str("<tr>");
            for cell in row.as_array().into_iter().flatten() {
                let _ = write!(out, "<td>{}</td>", escape(&text(cell)));
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table>");
    }
    let _ = writeln!(
        out,
        "<p><small>Generated {} by TD Analytics.</small></p></body></html>",
        escape(&text(&doc["generated_at"]))
    );
    out
}

fn md_cell(v: &Value) -> String {
    text(v).replace('|', "\\|").replace('\n', " ")
}

/// The Markdown page (charts as their last and extreme values; the HTML has them drawn).
pub fn markdown(doc: &Value) -> String {
    let mut out = format!("# {}\n\n", heading(doc));
    for line in list(doc, "summary") {
        let _ = writeln!(out, "- {}", text(line));
    }
    for c in list(doc, "charts") {
        let p = points(c);
        let (lo, hi) = p
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x.1), b.max(x.1)));
        match p.last() {
            Some(last) => {
                let _ = writeln!(
                    out,
                    "\n**{}**: {} points, from {lo:.2} to {hi:.2}, last {:.2}",
                    text(&c["title"]),
                    p.len(),
                    last.1
                );
            }
            None => {
                let _ = writeln!(out, "\n**{}**: no data", text(&c["title"]));
            }
        }
    }
    for t in list(doc, "tables") {
        let cols: Vec<String> = list(t, "columns").map(md_cell).collect();
        let _ = write!(
            out,
            "\n## {}\n\n| {} |\n|{}\n",
            text(&t["title"]),
            cols.join(" | "),
            "---|".repeat(cols.len())
        );
        for row in list(t, "rows") {
            let cells: Vec<String> = row.as_array().into_iter().flatten().map(md_cell).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
    }
    let _ = writeln!(
        out,
        "\n_Generated {} by TD Analytics._",
        text(&doc["generated_at"])
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_and_markdown_carry_the_figures_escaped() {
        let doc = serde_json::json!({
            "title": "Usage", "report": "daily", "profile_name": "Web <prod>", "from": "a", "to": "b",
            "generated_at": "now", "summary": ["12 requests"],
            "charts": [{"title": "Requests", "points": [[0, 1.0], [1000, 3.0]], "band": [], "marks": []}],
            "tables": [{"title": "Features", "columns": ["feature", "requests"], "rows": [["gen|erate", 12]]}],
        });
        let h = html(&doc);
        assert!(h.contains("Web &lt;prod&gt;") && !h.contains("Web <prod>"));
        assert!(
            h.contains("<li>12 requests</li>") && h.contains("<svg") && h.contains("<td>12</td>")
        );
        let m = markdown(&doc);
        assert!(m.contains("| gen\\|erate | 12 |"), "{m}");
        assert!(
            m.contains("**Requests**: 2 points, from 1.00 to 3.00, last 3.00"),
            "{m}"
        );
    }
}
