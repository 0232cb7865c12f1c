//! Line charts as inline SVG for reports: a series, an optional shaded band after it (a
//! forecast's interval), markers (anomalies), labelled axes, and a `<title>` and `role="img"`
//! with a description so screen readers say what the chart shows.

use std::fmt::Write as _;

use tda_schema::Timestamp;

const W: f64 = 720.0;
const H: f64 = 220.0;
const LEFT: f64 = 60.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 12.0;
const RIGHT: f64 = 12.0;

/// Escapes text for HTML and SVG.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn label(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v.abs() >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// A line chart of `points` (`(t, v)`), with `band` (`(t, low, high)`) shaded and `marks` as
/// red dots on the line.
pub fn line_chart(
    title: &str,
    points: &[(i64, f64)],
    band: &[(i64, f64, f64)],
    marks: &[i64],
) -> String {
    let times = points.iter().map(|p| p.0).chain(band.iter().map(|b| b.0));
    let (t0, t1) = times.fold((i64::MAX, i64::MIN), |(a, b), t| (a.min(t), b.max(t)));
    let values = points
        .iter()
        .map(|p| p.1)
        .chain(band.iter().flat_map(|b| [b.1, b.2]));
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let mut out = String::new();
    let desc = format!("{title}: {} points", points.len());
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{}\"><title>{}</title>",
        escape(&desc),
        escape(title)
    );
    if points.is_empty() || t1 <= t0 {
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">no data</text></svg>",
            W / 2.0,
            H / 2.0
        );
        return out;
    }
    let (lo, hi) = if hi > lo {
        (lo.min(0.0), hi)
    } else {
        (lo - 1.0, hi + 1.0)
    };
    let x = |t: i64| LEFT + (t - t0) as f64 / (t1 - t0) as f64 * (W - LEFT - RIGHT);
    let y = |v: f64| TOP + (1.0 - (v - lo) / (hi - lo)) * (H - TOP - BOTTOM);
    let _ = write!(
        out,
        "<g stroke=\"#888\" stroke-width=\"1\"><line x1=\"{LEFT}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\"/><line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{0}\"/></g>",
        H - BOTTOM,
        W - RIGHT
    );
    let _ = write!(out, "<g font-size=\"11\" fill=\"#555\"><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", LEFT - 4.0, y(hi) + 4.0, label(hi), LEFT - 4.0, y(lo) + 4.0, label(lo));
    let _ = write!(out, "<text x=\"{LEFT}\" y=\"{}\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text></g>", H - 8.0, escape(&Timestamp(t0).to_rfc3339()), W - RIGHT, H - 8.0, escape(&Timestamp(t1).to_rfc3339()));
    if !band.is_empty() {
        let upper: Vec<String> = band
            .iter()
            .map(|b| format!("{:.1},{:.1}", x(b.0), y(b.2)))
            .collect();
        let lower: Vec<String> = band
            .iter()
            .rev()
            .map(|b| format!("{:.1},{:.1}", x(b.0), y(b.1)))
            .collect();
        let _ = write!(
            out,
            "<polygon class=\"band\" fill=\"#9ecae1\" fill-opacity=\"0.5\" points=\"{} {}\"/>",
            upper.join(" "),
            lower.join(" ")
        );
    }
    let line: Vec<String> = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1)))
        .collect();
    let _ = write!(out, "<polyline class=\"series\" fill=\"none\" stroke=\"#3182bd\" stroke-width=\"1.5\" points=\"{}\"/>", line.join(" "));
    for t in marks {
        if let Some(p) = points.iter().min_by_key(|p| (p.0 - t).abs()) {
            let _ = write!(
                out,
                "<circle class=\"mark\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#de2d26\"/>",
                x(p.0),
                y(p.1)
            );
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_every_point_the_band_and_the_marks() {
        let points: Vec<(i64, f64)> = (0..10).map(|i| (i * 1000, i as f64)).collect();
        let band = vec![(10_000, 8.0, 12.0), (11_000, 9.0, 13.0)];
        let svg = line_chart("Requests <per hour>", &points, &band, &[3000]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("<title>Requests &lt;per hour&gt;</title>"));
        let polyline = svg
            .split("points=\"")
            .nth(2)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(polyline.split(' ').count(), 10);
        assert!(svg.contains("class=\"band\"") && svg.matches("class=\"mark\"").count() == 1);
        assert!(line_chart("x", &[], &[], &[]).contains("no data"));
    }
}
