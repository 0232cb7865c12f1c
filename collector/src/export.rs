//! Export of events or host samples over a time range as CSV or Parquet, written as it is read
//! (a window of the range at a time, in time order) to any writer: the API streams it.

use std::io::Write;
use std::sync::Arc;

use parquet::basic::{Compression, ZstdLevel};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use tda_schema::{Event, HostSample};

use crate::store::Filter;
use crate::store::{Storage, StoreError};
use tda_schema::timestamp::{DAY_MS, SECOND_MS};

/// The first part of the range read at once (its rows are sorted by time, then written); each
/// next window is sized from the last one's rows, so about [`WINDOW_ROWS`] are held at a time.
const FIRST_WINDOW_MS: i64 = 60_000;
/// Rows a window should hold: memory is bounded by this, not by the range or the event rate.
const WINDOW_ROWS: usize = 100_000;
/// The narrowest and widest windows.
const WINDOW_MS: std::ops::RangeInclusive<i64> = SECOND_MS..=DAY_MS;
/// Rows per Parquet row group.
const ROW_GROUP: usize = 50_000;

/// What is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Data {
    /// Usage events.
    Events,
    /// Host samples.
    Samples,
}

/// The file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with a header line.
    Csv,
    /// Apache Parquet, zstd-compressed.
    Parquet,
}

impl std::str::FromStr for Data {
    type Err = String;

    /// Parses `events` or `samples`.
    fn from_str(s: &str) -> Result<Data, String> {
        match s {
            "events" => Ok(Data::Events),
            "samples" => Ok(Data::Samples),
            other => Err(format!("`{other}` is not events or samples")),
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    /// Parses `csv` or `parquet`.
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "csv" => Ok(Format::Csv),
            "parquet" => Ok(Format::Parquet),
            other => Err(format!("`{other}` is not csv or parquet")),
        }
    }
}

impl Format {
    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the store failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// Writing failed (the client went away).
    #[error("write: {0}")]
    Write(#[from] std::io::Error),
    /// Encoding Parquet failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Encoding CSV failed.
    #[error("csv: {0}")]
    Csv(#[from] csv::Error),
}

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// A whole number.
    Int(Option<i64>),
    /// A real number.
    Real(Option<f64>),
    /// Text.
    Text(Option<String>),
}

/// A column: its name and Parquet type.
struct Column {
    name: &'static str,
    parquet: &'static str,
}

const fn col(name: &'static str, parquet: &'static str) -> Column {
    Column { name, parquet }
}

const TIME: &str = "INT64 (TIMESTAMP(MILLIS,true))";
const TEXT: &str = "BYTE_ARRAY (STRING)";
const EVENT_COLUMNS: &[Column] = &[
    col("timestamp", TIME),
    col("user_id", TEXT),
    col("session_id", TEXT),
    col("feature", TEXT),
    col("route", TEXT),
    col("status", "INT64"),
    col("latency_ms", "DOUBLE"),
    col("error", TEXT),
    col("properties", "BYTE_ARRAY (JSON)"),
];

fn event_row(e: &Event) -> Vec<Cell> {
    let props = (!e.properties.is_empty())
        .then(|| serde_json::Value::Object(e.properties.clone()).to_string());
    vec![
        Cell::Int(Some(e.timestamp.0)),
        Cell::Text(Some(e.user_id.clone())),
        Cell::Text(e.session_id.clone()),
        Cell::Text(Some(e.feature.clone())),
        Cell::Text(e.route.clone()),
        Cell::Int(e.status.map(i64::from)),
        Cell::Real(e.latency_ms),
        Cell::Text(e.error.clone()),
        Cell::Text(props),
    ]
}

const SAMPLE_COLUMNS: &[Column] = &[
    col("timestamp", TIME),
    col("agent_id", TEXT),
    col("cpu_percent", "DOUBLE"),
    col("mem_used_bytes", "INT64"),
    col("mem_total_bytes", "INT64"),
    col("swap_used_bytes", "INT64"),
    col("load1", "DOUBLE"),
    col("load5", "DOUBLE"),
    col("load15", "DOUBLE"),
    col("disk_available_bytes", "INT64"),
    col("disk_total_bytes", "INT64"),
    col("disk_read_bytes", "INT64"),
    col("disk_written_bytes", "INT64"),
    col("net_rx_bytes", "INT64"),
    col("net_tx_bytes", "INT64"),
    col("net_rx_errors", "INT64"),
    col("net_tx_errors", "INT64"),
    col("process_cpu_percent", "DOUBLE"),
    col("process_rss_bytes", "INT64"),
    col("process_open_fds", "INT64"),
];

fn sample_row(agent: &str, s: &HostSample) -> Vec<Cell> {
    let int = |v: u64| Cell::Int(Some(v as i64));
    let p = s.process.as_ref();
    vec![
        Cell::Int(Some(s.timestamp.0)),
        Cell::Text(Some(agent.to_string())),
        Cell::Real(Some(f64::from(s.cpu_percent))),
        int(s.mem_used_bytes),
        int(s.mem_total_bytes),
        int(s.swap_used_bytes),
        Cell::Real(Some(s.load[0])),
        Cell::Real(Some(s.load[1])),
        Cell::Real(Some(s.load[2])),
        int(s.disk_available_bytes),
        int(s.disk_total_bytes),
        int(s.disk_read_bytes),
        int(s.disk_written_bytes),
        int(s.net_rx_bytes),
        int(s.net_tx_bytes),
        int(s.net_rx_errors),
        int(s.net_tx_errors),
        Cell::Real(p.map(|p| f64::from(p.cpu_percent))),
        Cell::Int(p.map(|p| p.rss_bytes as i64)),
        Cell::Int(p.map(|p| i64::from(p.open_fds))),
    ]
}

/// Where rows go.
trait Sink {
    fn row(&mut self, row: Vec<Cell>) -> Result<(), ExportError>;
    fn finish(self: Box<Self>) -> Result<(), ExportError>;
}

/// What to export.
pub struct Request {
    /// Events or samples.
    pub data: Data,
    /// CSV or Parquet.
    pub format: Format,
    /// Range start, epoch ms (inclusive).
    pub from: i64,
    /// Range end, epoch ms (exclusive).
    pub to: i64,
    /// Which events (feature, user, status, labels) or samples (agent).
    pub filter: Filter,
}

/// Writes the export to `out`; returns the rows written.
pub fn write<W: Write + Send>(
    store: &dyn Storage,
    req: &Request,
    out: W,
) -> Result<u64, ExportError> {
    let columns = match req.data {
        Data::Events => EVENT_COLUMNS,
        Data::Samples => SAMPLE_COLUMNS,
    };
    let mut sink: Box<dyn Sink> = match req.format {
        Format::Csv => Box::new(CsvSink::new(out, columns)?),
        Format::Parquet => Box::new(ParquetSink::new(out, columns)?),
    };
    let (mut rows, mut start, mut width) = (0u64, req.from, FIRST_WINDOW_MS);
    while start < req.to {
        let end = start.saturating_add(width).min(req.to);
        let got = window(store, req, start, end)?;
        width = next_width(width, got.len());
        rows += got.len() as u64;
        for row in got {
            sink.row(row)?;
        }
        start = end;
    }
    sink.finish()?;
    Ok(rows)
}

/// The next window's width after one of `width` held `rows`: halved while over
/// [`WINDOW_ROWS`], doubled while under a quarter of it.
fn next_width(width: i64, rows: usize) -> i64 {
    let next = if rows > WINDOW_ROWS {
        width / 2
    } else if rows < WINDOW_ROWS / 4 {
        width.saturating_mul(2)
    } else {
        width
    };
    next.clamp(*WINDOW_MS.start(), *WINDOW_MS.end())
}

/// The rows of `[start, end)`, in time order.
fn window(
    store: &dyn Storage,
    req: &Request,
    start: i64,
    end: i64,
) -> Result<Vec<Vec<Cell>>, StoreError> {
    let f = &req.filter;
    match req.data {
        Data::Events => {
            let mut events = Vec::new();
            store.scan_events(start, end, &mut |e| {
                if f.matches(e) {
                    events.push((e.timestamp, event_row(e)));
                }
            })?;
            Ok(by_time(events))
        }
        Data::Samples => {
            let mut samples = Vec::new();
            store.scan_samples(start, end, f.agent.as_deref(), &mut |agent, s| {
                samples.push((s.timestamp, sample_row(agent, s)));
            })?;
            Ok(by_time(samples))
        }
    }
}

/// The rows, oldest first (a stable sort: rows of one millisecond keep the store's order).
fn by_time(mut rows: Vec<(tda_schema::Timestamp, Vec<Cell>)>) -> Vec<Vec<Cell>> {
    rows.sort_by_key(|(t, _)| *t);
    rows.into_iter().map(|(_, row)| row).collect()
}

struct CsvSink<W: Write> {
    out: csv::Writer<W>,
}

impl<W: Write> CsvSink<W> {
    fn new(out: W, columns: &[Column]) -> Result<Self, ExportError> {
        let mut out = csv::Writer::from_writer(out);
        out.write_record(columns.iter().map(|c| c.name))?;
        Ok(CsvSink { out })
    }
}

impl<W: Write> Sink for CsvSink<W> {
    fn row(&mut self, row: Vec<Cell>) -> Result<(), ExportError> {
        let fields = row.into_iter().enumerate().map(|(i, c)| match c {
            Cell::Int(Some(v)) if i == 0 => tda_schema::Timestamp(v).to_rfc3339(),
            Cell::Int(v) => v.map(|v| v.to_string()).unwrap_or_default(),
            Cell::Real(v) => v.map(|v| v.to_string()).unwrap_or_default(),
            Cell::Text(v) => v.unwrap_or_default(),
        });
        self.out.write_record(fields)?;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), ExportError> {
        self.out.flush()?;
        Ok(())
    }
}

struct ParquetSink<W: Write + Send> {
    writer: SerializedFileWriter<W>,
    buffered: Vec<Vec<Cell>>,
}

impl<W: Write + Send> ParquetSink<W> {
    fn new(out: W, columns: &[Column]) -> Result<Self, ExportError> {
        let fields: Vec<String> = columns
            .iter()
            .map(|c| {
                let (kind, logical) = c.parquet.split_once(' ').unwrap_or((c.parquet, ""));
                format!("OPTIONAL {kind} {} {logical};", c.name)
            })
            .collect();
        let text = format!("message export {{ {} }}", fields.join(" "));
        let schema = Arc::new(parquet::schema::parser::parse_message_type(&text)?);
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
            .set_created_by("tda-collector".into())
            .build();
        let writer = SerializedFileWriter::new(out, schema, Arc::new(props))?;
        Ok(ParquetSink {
            writer,
            buffered: Vec::new(),
        })
    }

    /// Writes the buffered rows as one row group, column by column.
    fn flush(&mut self) -> Result<(), ExportError> {
        if self.buffered.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.buffered);
        let mut group = self.writer.next_row_group()?;
        let mut i = 0;
        while let Some(mut column) = group.next_column()? {
            let cells = rows.iter().map(|r| &r[i]);
            let levels: Vec<i16> = cells.clone().map(|c| i16::from(!is_null(c))).collect();
            match rows[0][i] {
                Cell::Int(_) => {
                    let v: Vec<i64> = cells
                        .filter_map(|c| if let Cell::Int(v) = c { *v } else { None })
                        .collect();
                    column
                        .typed::<Int64Type>()
                        .write_batch(&v, Some(&levels), None)?;
                }
                Cell::Real(_) => {
                    let v: Vec<f64> = cells
                        .filter_map(|c| if let Cell::Real(v) = c { *v } else { None })
                        .collect();
                    column
                        .typed::<DoubleType>()
                        .write_batch(&v, Some(&levels), None)?;
                }
                Cell::Text(_) => {
                    let v: Vec<ByteArray> = cells
                        .filter_map(|c| {
                            if let Cell::Text(v) = c {
                                v.as_deref().map(ByteArray::from)
                            } else {
                                None
                            }
                        })
                        .collect();
                    column
                        .typed::<ByteArrayType>()
                        .write_batch(&v, Some(&levels), None)?;
                }
            }
            column.close()?;
            i += 1;
        }
        group.close()?;
        Ok(())
    }
}

fn is_null(c: &Cell) -> bool {
    matches!(c, Cell::Int(None) | Cell::Real(None) | Cell::Text(None))
}

impl<W: Write + Send> Sink for ParquetSink<W> {
    fn row(&mut self, row: Vec<Cell>) -> Result<(), ExportError> {
        self.buffered.push(row);
        if self.buffered.len() >= ROW_GROUP {
            self.flush()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), ExportError> {
        self.flush()?;
        self.writer.close()?;
        Ok(())
    }
}

/// A writer whose bytes go, in chunks of 64 KiB, to a channel (the body of a streamed answer);
/// writing fails once the receiver is gone (the client went away).
pub struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<tda_daemon::Chunk>,
    buf: Vec<u8>,
}

/// Bytes gathered before a chunk is sent.
const CHUNK: usize = 64 * 1024;

impl ChannelWriter {
    /// Writes into `tx`; call from a blocking thread (it waits while the channel is full).
    pub fn new(tx: tokio::sync::mpsc::Sender<tda_daemon::Chunk>) -> Self {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = bytes::Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        let _ = self.send();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_narrow_while_full_and_widen_while_sparse() {
        assert_eq!(next_width(60_000, WINDOW_ROWS + 1), 30_000);
        assert_eq!(next_width(60_000, WINDOW_ROWS), 60_000);
        assert_eq!(next_width(60_000, WINDOW_ROWS / 4), 60_000);
        assert_eq!(next_width(60_000, WINDOW_ROWS / 4 - 1), 120_000);
        assert_eq!(
            next_width(1_000, 10 * WINDOW_ROWS),
            1_000,
            "never under a second"
        );
        assert_eq!(next_width(86_400_000, 0), 86_400_000, "never over a day");
    }
}
