//! `tda export`: counts the rows the collector holds for the range, downloads the export with
//! a progress bar, and checks that every row arrived.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use tda_schema::timestamp::{now_ms, parse_bound};

use crate::args::{name, Data, ExportFormat};

/// What to export, as the command line gave it.
pub struct Ask {
    /// What to export.
    pub data: Data,
    /// The file's format.
    pub format: ExportFormat,
    /// The file to write.
    pub output: PathBuf,
    /// `from` and `to` as given.
    pub range: Vec<(&'static str, String)>,
    /// Filters (`feature`, `user`, `status`, `agent`).
    pub filter: Vec<(&'static str, String)>,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

/// Runs the export; returns the summary line.
pub fn run(base: &str, token: Option<&str>, ask: &Ask) -> anyhow::Result<String> {
    // No overall timeout: a large export streams for as long as it takes.
    let client = tda_daemon::tls::blocking_client_builder()
        .timeout(None)
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()?;
    let now = now_ms();
    let bound = |name: &str| -> anyhow::Result<i64> {
        let text = ask
            .range
            .iter()
            .find(|(k, _)| *k == name)
            .map_or("0s", |(_, v)| v.as_str());
        parse_bound(text, now).map_err(|e| {
            anyhow::anyhow!("--{}: {e}", if name == "from" { "since" } else { "until" })
        })
    };
    let (from, to) = (bound("from")?, bound("to")?);
    if from >= to {
        bail!("--since must be before --until");
    }
    let mut query: Vec<(&str, String)> = vec![("from", from.to_string()), ("to", to.to_string())];
    query.extend(ask.filter.iter().cloned());
    let get = |path: &str, extra: &[(&str, String)]| {
        let req = client
            .get(format!("{base}{path}"))
            .query(&query)
            .query(extra);
        let req = match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req
            .send()
            .with_context(|| format!("cannot reach the collector at {base}"))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let v: serde_json::Value = resp.json().unwrap_or_default();
            bail!(
                "collector answered {status}: {}",
                v["error"].as_str().unwrap_or("(no message)")
            );
        }
        Ok(resp)
    };
    let series = if ask.data == Data::Samples {
        "host.cpu_percent"
    } else {
        "requests"
    };
    let step = format!("{}ms", (to - from).max(1000));
    let counted: serde_json::Value = get(
        "/api/v1/query",
        &[
            ("series", series.into()),
            ("agg", "count".into()),
            ("step", step),
        ],
    )?
    .json()?;
    let expected = counted["points"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["v"].as_f64())
        .sum::<f64>() as u64;
    // The count just answered, so a failure here is the export's own (the collector's log
    // says why), not an unreachable collector.
    let resp = get(
        "/api/v1/export",
        &[("data", name(&ask.data)), ("format", name(&ask.format))],
    )
    .context("the export broke off before any data arrived (the collector's log says why)")?;
    let file = std::fs::File::create(&ask.output)
        .with_context(|| format!("cannot write {}", ask.output.display()))?;
    let bar = bar(ask.progress, expected);
    let rows = match ask.format {
        ExportFormat::Parquet => parquet_rows(resp, file, &bar, &ask.output)?,
        ExportFormat::Csv => csv_rows(resp, file, &bar, &ask.output)?,
    };
    bar.finish_and_clear();
    let arrived = completeness(rows, expected)
        .map_err(|e| anyhow::anyhow!("{e} ({} is incomplete)", ask.output.display()))?;
    Ok(format!(
        "{rows} {} written to {}{arrived}\n",
        name(&ask.data),
        ask.output.display()
    ))
}

/// Whether an export of `rows` rows is whole, `expected` being the count taken just before it:
/// fewer rows is an export that ended early; more are events stored into the range while it
/// ran (said, not an error).
fn completeness(rows: u64, expected: u64) -> Result<String, String> {
    match rows.cmp(&expected) {
        std::cmp::Ordering::Less => Err(format!(
            "export ended early: {rows} of {expected} rows arrived"
        )),
        std::cmp::Ordering::Equal => Ok(String::new()),
        std::cmp::Ordering::Greater => Ok(format!(
            " ({} stored into the range while the export ran)",
            rows - expected
        )),
    }
}

fn bar(visible: bool, rows: u64) -> indicatif::ProgressBar {
    if !visible {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(rows);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} rows  {bytes} {msg} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// Copies everything it reads into a file, counting the bytes on the bar.
struct Tee<R> {
    from: R,
    to: std::io::BufWriter<std::fs::File>,
    bar: indicatif::ProgressBar,
    bytes: u64,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.from.read(buf)?;
        self.to.write_all(&buf[..n])?;
        self.bytes += n as u64;
        self.bar
            .set_message(indicatif::HumanBytes(self.bytes).to_string());
        Ok(n)
    }
}

/// Writes the CSV, counting its records as they arrive.
fn csv_rows(
    resp: reqwest::blocking::Response,
    file: std::fs::File,
    bar: &indicatif::ProgressBar,
    path: &std::path::Path,
) -> anyhow::Result<u64> {
    let tee = Tee {
        from: resp,
        to: std::io::BufWriter::new(file),
        bar: bar.clone(),
        bytes: 0,
    };
    let mut reader = csv::Reader::from_reader(tee);
    let mut rows = 0;
    for record in reader.records() {
        record.with_context(|| broke_off(format!("{rows} rows"), path))?;
        rows += 1;
        bar.inc(1);
    }
    reader.into_inner().to.flush()?;
    Ok(rows)
}

/// Writes the Parquet file (a bar of bytes while it arrives), then reads its row count back.
fn parquet_rows(
    resp: reqwest::blocking::Response,
    file: std::fs::File,
    bar: &indicatif::ProgressBar,
    path: &std::path::Path,
) -> anyhow::Result<u64> {
    use parquet::file::reader::FileReader;
    let mut tee = Tee {
        from: resp,
        to: std::io::BufWriter::new(file),
        bar: bar.clone(),
        bytes: 0,
    };
    std::io::copy(&mut tee, &mut std::io::sink())
        .with_context(|| broke_off(format!("{} bytes", tee.bytes), path))?;
    tee.to.flush()?;
    let reader = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(path)?)
        .with_context(|| {
            format!(
                "{} is not a whole Parquet file (the export ended early)",
                path.display()
            )
        })?;
    let rows = reader.metadata().file_metadata().num_rows() as u64;
    bar.set_position(rows);
    Ok(rows)
}

/// Why an export failed part way, `after` what had arrived (`120 rows`).
fn broke_off(after: String, path: &std::path::Path) -> String {
    format!(
        "the export broke off after {after} (the collector's log says why); {} is incomplete",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_that_arrive_during_the_export_do_not_fail_it() {
        assert_eq!(completeness(300_520, 300_520), Ok(String::new()));
        assert_eq!(
            completeness(300_530, 300_520),
            Ok(" (10 stored into the range while the export ran)".into())
        );
        assert_eq!(
            completeness(10, 20),
            Err("export ended early: 10 of 20 rows arrived".into())
        );
    }
}
