//! Columnar encoding of a block of one agent's host samples (what the collector stores, and what
//! the agent's binary batch carries its samples in): timestamps as delta-of-delta,
//! integers as deltas, floats as decimal integers with a per-column scale (as they were
//! sampled: 2 decimals) then deltas, falling back to XOR of the previous value's bits when no
//! scale of up to 6 decimals is exact; all as zig-zag varints. Version 4 compresses each column
//! in its own zstd frame behind a directory of their lengths, so a query of one series
//! decompresses the timestamps and that column only; version 3 (one frame) is still read.

use std::borrow::Borrow;

use tda_schema::{HostSample, ProcessSample, Timestamp};

use crate::codec::{put_signed, put_str, put_varint, Reader};

/// Format version byte of a sample block.
pub const VERSION: u8 = 4;
/// The previous version: the same columns in one zstd frame.
const VERSION_ONE_FRAME: u8 = 3;
const ZSTD_LEVEL: i32 = 3;
const MAX_DECIMALS: i32 = 6;

/// Writes integers as zig-zag deltas of the previous one.
fn put_deltas(out: &mut Vec<u8>, values: impl Iterator<Item = u64>) {
    let mut prev = 0u64;
    for v in values {
        put_signed(out, v.wrapping_sub(prev) as i64);
        prev = v;
    }
}

fn read_deltas(r: &mut Reader, n: usize) -> Result<Vec<u64>, String> {
    let mut prev = 0u64;
    (0..n)
        .map(|_| {
            prev = prev.wrapping_add(r.signed()? as u64);
            Ok(prev)
        })
        .collect()
}

/// The scale `k` (decimals) at which every value is exactly `round(v * 10^k) / 10^k`, once
/// narrowed by `narrow` (f32 columns round-trip through f32).
fn decimals(values: &[f64], narrow: fn(f64) -> f64) -> Option<i32> {
    (0..=MAX_DECIMALS).find(|&k| {
        let p = 10f64.powi(k);
        values
            .iter()
            .all(|v| v.is_finite() && (v * p).abs() < 9.0e15 && narrow((v * p).round() / p) == *v)
    })
}

/// A float column: 0 + k + decimal deltas, or 1 + XOR-of-previous bits.
fn put_floats(out: &mut Vec<u8>, values: &[f64], narrow: fn(f64) -> f64) {
    match decimals(values, narrow) {
        Some(k) => {
            out.push(0);
            out.push(k as u8);
            let p = 10f64.powi(k);
            put_deltas(out, values.iter().map(|v| (v * p).round() as i64 as u64));
        }
        None => {
            out.push(1);
            let mut prev = 0u64;
            for v in values {
                put_varint(out, v.to_bits() ^ prev);
                prev = v.to_bits();
            }
        }
    }
}

fn read_floats(r: &mut Reader, n: usize, narrow: fn(f64) -> f64) -> Result<Vec<f64>, String> {
    match r.byte()? {
        0 => {
            let p = 10f64.powi(i32::from(r.byte()?).min(MAX_DECIMALS));
            Ok(read_deltas(r, n)?
                .into_iter()
                .map(|m| narrow(m as i64 as f64 / p))
                .collect())
        }
        1 => {
            let mut prev = 0u64;
            (0..n)
                .map(|_| {
                    prev ^= r.varint()?;
                    Ok(f64::from_bits(prev))
                })
                .collect()
        }
        k => Err(format!("unknown float column kind {k}")),
    }
}

fn as_f32(v: f64) -> f64 {
    f64::from(v as f32)
}

fn same(v: f64) -> f64 {
    v
}

/// The integer columns of a host sample, in block order.
const INTS: usize = 14;

fn ints(s: &HostSample) -> [u64; INTS] {
    [
        s.mem_total_bytes,
        s.mem_used_bytes,
        s.swap_total_bytes,
        s.swap_used_bytes,
        s.disk_total_bytes,
        s.disk_available_bytes,
        s.disk_read_bytes,
        s.disk_written_bytes,
        s.net_rx_bytes,
        s.net_tx_bytes,
        s.net_rx_packets,
        s.net_tx_packets,
        s.net_rx_errors,
        s.net_tx_errors,
    ]
}

/// The columns of a block, each as its own bytes: timestamps (delta-of-delta), the integer
/// columns, CPU, the three loads, per-core CPU, the watched process.
fn columns(samples: &[&HostSample]) -> Vec<Vec<u8>> {
    let mut cols = Vec::with_capacity(COLUMNS);
    let mut times = Vec::new();
    let (mut prev, mut prev_delta) = (0i64, 0i64);
    for s in samples {
        let delta = s.timestamp.0.wrapping_sub(prev);
        put_signed(&mut times, delta.wrapping_sub(prev_delta));
        (prev, prev_delta) = (s.timestamp.0, delta);
    }
    cols.push(times);
    for i in 0..INTS {
        let mut col = Vec::new();
        put_deltas(&mut col, samples.iter().map(|s| ints(s)[i]));
        cols.push(col);
    }
    let mut cpu = Vec::new();
    let values: Vec<f64> = samples.iter().map(|s| f64::from(s.cpu_percent)).collect();
    put_floats(&mut cpu, &values, as_f32);
    cols.push(cpu);
    for l in 0..3 {
        let mut load = Vec::new();
        put_floats(
            &mut load,
            &samples.iter().map(|s| s.load[l]).collect::<Vec<_>>(),
            same,
        );
        cols.push(load);
    }
    let (mut cores, mut processes) = (Vec::new(), Vec::new());
    put_cores(&mut cores, samples);
    put_processes(&mut processes, samples);
    cols.push(cores);
    cols.push(processes);
    cols
}

/// Columns in a block: timestamps, [`INTS`] integers, CPU, three loads, cores, processes.
const COLUMNS: usize = 1 + INTS + 1 + 3 + 2;

/// Encodes one agent's samples as a versioned columnar block, each column its own zstd frame.
pub fn encode<S: Borrow<HostSample>>(agent_id: &str, samples: &[S]) -> Vec<u8> {
    let samples: Vec<&HostSample> = samples.iter().map(Borrow::borrow).collect();
    let frames: Vec<Vec<u8>> = columns(&samples)
        .iter()
        .map(|c| zstd::bulk::compress(c, ZSTD_LEVEL).unwrap_or_default())
        .collect();
    let mut out = vec![VERSION];
    put_str(&mut out, agent_id);
    put_varint(&mut out, samples.len() as u64);
    put_varint(&mut out, frames.len() as u64);
    for f in &frames {
        put_varint(&mut out, f.len() as u64);
    }
    frames.iter().for_each(|f| out.extend_from_slice(f));
    out
}

/// Encodes one agent's samples in the one-frame layout (version 3): smaller than [`encode`]'s
/// for a few samples (each of version 4's frames has its own header), so an agent's batch
/// carries whichever of the two is smaller ([`encode_smaller`]).
pub fn encode_one_frame<S: Borrow<HostSample>>(agent_id: &str, samples: &[S]) -> Vec<u8> {
    let samples: Vec<&HostSample> = samples.iter().map(Borrow::borrow).collect();
    let mut raw = Vec::new();
    put_str(&mut raw, agent_id);
    put_varint(&mut raw, samples.len() as u64);
    columns(&samples)
        .iter()
        .for_each(|c| raw.extend_from_slice(c));
    let mut out = vec![VERSION_ONE_FRAME];
    out.extend(zstd::bulk::compress(&raw, ZSTD_LEVEL).unwrap_or_default());
    out
}

/// The smaller of the two layouts of these samples (both are read alike).
pub fn encode_smaller<S: Borrow<HostSample>>(agent_id: &str, samples: &[S]) -> Vec<u8> {
    let (framed, one) = (
        encode(agent_id, samples),
        encode_one_frame(agent_id, samples),
    );
    if one.len() < framed.len() {
        one
    } else {
        framed
    }
}

/// A version 4 block's agent, sample count and column frames.
fn frames(block: &[u8]) -> Result<(String, usize, Vec<&[u8]>), String> {
    let mut r = Reader::new(&block[1..]);
    let agent = r.str()?.to_string();
    // Not `count()`: the samples are in the frames, which may compress many into a byte.
    let n = usize::try_from(r.varint()?).map_err(|_| "sample count out of range")?;
    let count = r.count()?;
    if count != COLUMNS {
        return Err(format!("{count} columns, expected {COLUMNS}"));
    }
    let lens: Vec<usize> = (0..count).map(|_| r.count()).collect::<Result<_, _>>()?;
    let frames = lens
        .iter()
        .map(|len| r.bytes(*len))
        .collect::<Result<_, _>>()?;
    if !r.is_done() {
        return Err("trailing bytes after sample block".into());
    }
    Ok((agent, n, frames))
}

fn unpack(frame: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    crate::events::decompress(frame, limit)
}

/// Per-core CPU: the core counts, then one float column per core position.
fn put_cores(raw: &mut Vec<u8>, samples: &[&HostSample]) {
    for s in samples {
        put_varint(raw, s.cpu_per_core.len() as u64);
    }
    let most = samples
        .iter()
        .map(|s| s.cpu_per_core.len())
        .max()
        .unwrap_or(0);
    for c in 0..most {
        let values: Vec<f64> = samples
            .iter()
            .filter_map(|s| s.cpu_per_core.get(c).map(|v| f64::from(*v)))
            .collect();
        put_floats(raw, &values, as_f32);
    }
}

/// The watched process: presence flags, then its fields for the samples that have one.
fn put_processes(raw: &mut Vec<u8>, samples: &[&HostSample]) {
    let procs: Vec<&ProcessSample> = samples.iter().filter_map(|s| s.process.as_ref()).collect();
    for s in samples {
        raw.push(u8::from(s.process.is_some()));
    }
    for p in &procs {
        put_str(raw, &p.name);
    }
    put_deltas(raw, procs.iter().map(|p| u64::from(p.pid)));
    let cpu: Vec<f64> = procs.iter().map(|p| f64::from(p.cpu_percent)).collect();
    put_floats(raw, &cpu, as_f32);
    put_deltas(raw, procs.iter().map(|p| p.rss_bytes));
    put_deltas(raw, procs.iter().map(|p| p.virtual_bytes));
    put_deltas(raw, procs.iter().map(|p| u64::from(p.threads)));
    put_deltas(raw, procs.iter().map(|p| u64::from(p.open_fds)));
    put_deltas(raw, procs.iter().map(|p| p.uptime_secs));
}

/// Whether a block is a columnar sample block (of this version or the one-frame one).
pub fn is_columnar(block: &[u8]) -> bool {
    matches!(block.first(), Some(&VERSION) | Some(&VERSION_ONE_FRAME))
}

/// Decodes a block written by [`encode`] (version byte included): the agent and its samples.
pub fn decode(block: &[u8]) -> Result<(String, Vec<HostSample>), String> {
    decode_bounded(block, usize::MAX)
}

/// [`decode`] for a block from outside: refused when its columns would decompress to more
/// than `limit` bytes in all.
pub fn decode_bounded(block: &[u8], limit: usize) -> Result<(String, Vec<HostSample>), String> {
    let raw = match block.first() {
        Some(&VERSION) => {
            // The frames, unpacked one after another, are the one-frame layout's columns.
            let (agent, n, frames) = frames(block)?;
            let mut raw = Vec::new();
            put_str(&mut raw, &agent);
            put_varint(&mut raw, n as u64);
            for f in frames {
                let room = limit.saturating_sub(raw.len());
                raw.extend(unpack(f, room)?);
            }
            raw
        }
        Some(&VERSION_ONE_FRAME) => unpack(&block[1..], limit)?,
        _ => return Err("not a columnar sample block".into()),
    };
    decode_raw(&raw)
}

/// Reads `n` values of one column as floats.
type ReadColumn = fn(&mut Reader, usize) -> Result<Vec<f64>, String>;

/// One agent's values of a series: the agent and (time, value) pairs.
pub type Series = (String, Vec<(i64, f64)>);

/// The column frame of a host series and how to read its values, if it has one.
fn series_column(series: &str) -> Option<(usize, ReadColumn)> {
    let int: ReadColumn = |r, n| Ok(read_deltas(r, n)?.into_iter().map(|v| v as f64).collect());
    let float: ReadColumn = |r, n| read_floats(r, n, same);
    let cpu: ReadColumn = |r, n| read_floats(r, n, as_f32);
    Some(match series {
        "host.cpu_percent" => (1 + INTS, cpu),
        "host.mem_used_bytes" => (2, int),
        "host.swap_used_bytes" => (4, int),
        "host.load1" => (2 + INTS, float),
        "host.disk_read_bytes" => (7, int),
        "host.disk_written_bytes" => (8, int),
        "host.net_rx_bytes" => (9, int),
        "host.net_tx_bytes" => (10, int),
        _ => return None,
    })
}

/// One host series of a version 4 block, as (time, value) pairs, reading only the timestamps'
/// frame and the series' own: the agent and the pairs, or `None` when the block is of an older
/// version or the series is not a host column (the caller decodes the samples).
pub fn decode_series(block: &[u8], series: &str) -> Result<Option<Series>, String> {
    let Some((column, read)) = series_column(series) else {
        return Ok(None);
    };
    if block.first() != Some(&VERSION) {
        return Ok(None);
    }
    let (agent, n, frames) = frames(block)?;
    let times = unpack(frames[0], usize::MAX)?;
    if n > times.len() {
        return Err(format!(
            "{n} samples in {} bytes of timestamps",
            times.len()
        ));
    }
    let times = read_times(&mut Reader::new(&times), n)?;
    let values = read(&mut Reader::new(&unpack(frames[column], usize::MAX)?), n)?;
    Ok(Some((agent, times.into_iter().zip(values).collect())))
}

/// The timestamps column of `n` samples.
fn read_times(r: &mut Reader, n: usize) -> Result<Vec<i64>, String> {
    let (mut prev, mut prev_delta, mut times) = (0i64, 0i64, Vec::with_capacity(n));
    for _ in 0..n {
        prev_delta = prev_delta.wrapping_add(r.signed()?);
        prev = prev.wrapping_add(prev_delta);
        times.push(prev);
    }
    Ok(times)
}

/// Decodes the one-frame layout, uncompressed: agent, count, then every column.
fn decode_raw(raw: &[u8]) -> Result<(String, Vec<HostSample>), String> {
    let mut r = Reader::new(raw);
    let agent = r.str()?.to_string();
    let n = r.count()?;
    let times = read_times(&mut r, n)?;
    let ints: Vec<Vec<u64>> = (0..INTS)
        .map(|_| read_deltas(&mut r, n))
        .collect::<Result<_, _>>()?;
    let cpu = read_floats(&mut r, n, as_f32)?;
    let load: Vec<Vec<f64>> = (0..3)
        .map(|_| read_floats(&mut r, n, same))
        .collect::<Result<_, _>>()?;
    let cores = read_cores(&mut r, n)?;
    let processes = read_processes(&mut r, n)?;
    let samples = (0..n)
        .zip(cores.into_iter().zip(processes))
        .map(|(i, (cpu_per_core, process))| HostSample {
            timestamp: Timestamp(times[i]),
            cpu_percent: cpu[i] as f32,
            cpu_per_core,
            mem_total_bytes: ints[0][i],
            mem_used_bytes: ints[1][i],
            swap_total_bytes: ints[2][i],
            swap_used_bytes: ints[3][i],
            load: [load[0][i], load[1][i], load[2][i]],
            disk_total_bytes: ints[4][i],
            disk_available_bytes: ints[5][i],
            disk_read_bytes: ints[6][i],
            disk_written_bytes: ints[7][i],
            net_rx_bytes: ints[8][i],
            net_tx_bytes: ints[9][i],
            net_rx_packets: ints[10][i],
            net_tx_packets: ints[11][i],
            net_rx_errors: ints[12][i],
            net_tx_errors: ints[13][i],
            process,
        })
        .collect();
    if !r.is_done() {
        return Err("trailing bytes after sample block".into());
    }
    Ok((agent, samples))
}

fn read_cores(r: &mut Reader, n: usize) -> Result<Vec<Vec<f32>>, String> {
    let counts: Vec<usize> = (0..n).map(|_| r.count()).collect::<Result<_, _>>()?;
    let most = counts.iter().copied().max().unwrap_or(0);
    let mut cores: Vec<Vec<f32>> = counts.iter().map(|c| Vec::with_capacity(*c)).collect();
    for c in 0..most {
        let having = counts.iter().filter(|k| **k > c).count();
        let mut values = read_floats(r, having, as_f32)?.into_iter();
        for (i, k) in counts.iter().enumerate() {
            if *k > c {
                cores[i].push(values.next().ok_or("core column too short")? as f32);
            }
        }
    }
    Ok(cores)
}

fn read_processes(r: &mut Reader, n: usize) -> Result<Vec<Option<ProcessSample>>, String> {
    let present: Vec<bool> = (0..n)
        .map(|_| Ok(r.byte()? == 1))
        .collect::<Result<_, String>>()?;
    let m = present.iter().filter(|p| **p).count();
    let names: Vec<String> = (0..m)
        .map(|_| Ok(r.str()?.to_string()))
        .collect::<Result<_, String>>()?;
    let pid = read_deltas(r, m)?;
    let cpu = read_floats(r, m, as_f32)?;
    let cols: Vec<Vec<u64>> = (0..5)
        .map(|_| read_deltas(r, m))
        .collect::<Result<_, _>>()?;
    let narrow = |v: u64, what: &str| u32::try_from(v).map_err(|_| format!("{what} out of range"));
    let mut procs = names.into_iter().enumerate().map(|(j, name)| {
        Ok(ProcessSample {
            pid: narrow(pid[j], "pid")?,
            name,
            cpu_percent: cpu[j] as f32,
            rss_bytes: cols[0][j],
            virtual_bytes: cols[1][j],
            threads: narrow(cols[2][j], "threads")?,
            open_fds: narrow(cols[3][j], "open_fds")?,
            uptime_secs: cols[4][j],
        })
    });
    present
        .into_iter()
        .map(|p| {
            if p {
                procs.next().transpose()
            } else {
                Ok(None)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(i: u64, process: bool) -> HostSample {
        let proc_json = serde_json::json!({"pid": 4242, "name": "td-generator", "cpu_percent": 12.5 + i as f64,
            "rss_bytes": 1_000_000 + i * 4096, "virtual_bytes": 9_000_000, "threads": 8, "open_fds": 40, "uptime_secs": 100 + i});
        let mut v = serde_json::json!({
            "timestamp": 1_795_860_000_000u64 + i * 1000 + (i % 3), "cpu_percent": 23.45 + (i % 7) as f64 * 0.1,
            "cpu_per_core": if i % 4 == 0 { vec![1.5, 2.25] } else { vec![0.1 + i as f64, 3.0, 4.0] },
            "mem_total_bytes": 8u64 << 30, "mem_used_bytes": (3u64 << 30) + i * 4096,
            "swap_total_bytes": 0, "swap_used_bytes": 0, "load": [0.25 * i as f64, 1.0 / 3.0, 0.0],
            "disk_total_bytes": 100, "disk_available_bytes": 50, "disk_read_bytes": i * 512, "disk_written_bytes": 0,
            "net_rx_bytes": i * i * 1000, "net_tx_bytes": u64::MAX - i, "net_rx_packets": 1, "net_tx_packets": 2,
            "net_rx_errors": 0, "net_tx_errors": 0
        });
        if process {
            v["process"] = proc_json;
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn round_trips_every_field_exactly() {
        let samples: Vec<HostSample> = (0..50).map(|i| sample(i, i % 5 != 0)).collect();
        let (agent, back) = decode(&encode("web-1", &samples)).unwrap();
        assert_eq!((agent.as_str(), back), ("web-1", samples));
        assert_eq!(
            decode(&encode::<HostSample>("a", &[])).unwrap(),
            ("a".to_string(), vec![])
        );
    }

    #[test]
    fn one_series_reads_as_the_samples_say_and_version_3_is_still_read() {
        let samples: Vec<HostSample> = (0..200).map(|i| sample(i, i % 5 != 0)).collect();
        let block = encode("web-1", &samples);
        let field = |series: &str, s: &HostSample| match series {
            "host.cpu_percent" => f64::from(s.cpu_percent),
            "host.mem_used_bytes" => s.mem_used_bytes as f64,
            "host.load1" => s.load[0],
            _ => s.net_rx_bytes as f64,
        };
        for series in [
            "host.cpu_percent",
            "host.mem_used_bytes",
            "host.load1",
            "host.net_rx_bytes",
        ] {
            let want: Vec<(i64, f64)> = samples
                .iter()
                .map(|s| (s.timestamp.0, field(series, s)))
                .collect();
            let (agent, got) = decode_series(&block, series).unwrap().unwrap();
            assert_eq!((agent.as_str(), got), ("web-1", want), "{series}");
        }
        assert_eq!(decode_series(&block, "process.rss_bytes").unwrap(), None);
        let old = encode_one_frame("web-1", &samples);
        assert_eq!(decode(&old).unwrap(), ("web-1".to_string(), samples));
        assert_eq!(decode_series(&old, "host.net_rx_bytes").unwrap(), None);
        assert!(decode_bounded(&block, 100)
            .unwrap_err()
            .contains("more than"));
    }

    #[test]
    fn many_identical_samples_compressing_below_a_byte_each_decode() {
        let one = sample(1, false);
        let samples: Vec<HostSample> = (0..5_000)
            .map(|i| HostSample {
                timestamp: Timestamp(one.timestamp.0 + i * 1000),
                ..one.clone()
            })
            .collect();
        let block = encode("quiet", &samples);
        assert!(block.len() < samples.len(), "{} bytes", block.len());
        assert_eq!(decode(&block).unwrap().1, samples);
        let (_, series) = decode_series(&block, "host.cpu_percent").unwrap().unwrap();
        assert_eq!(series.len(), 5_000);
    }

    #[test]
    fn two_decimal_gauges_take_few_bytes_and_damage_is_an_error() {
        let samples: Vec<HostSample> = (0..3600).map(|i| sample(i, true)).collect();
        let block = encode("web-1", &samples);
        assert!(block.len() < samples.len() * 20, "{} bytes", block.len());
        assert!(decode(&block[..block.len() - 4]).is_err());
        assert!(decode(&[VERSION]).is_err());
    }
}
