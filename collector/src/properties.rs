//! Property tests (proptest): the block codecs give back any input exactly and fail on damage
//! without panicking; the sketches keep their error bounds, merge like their union and survive
//! encoding. Seeds are fixed, so a run is repeatable and a failure is the same on every machine.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use serde_json::{Map, Value};
use tda_schema::{Event, HostSample, ProcessSample, Timestamp};

use crate::sketch::distinct::Distinct;
use crate::sketch::quantile::{Sketch, RELATIVE_ERROR, ZERO};
use crate::store::{columns, samples};
use tda_blocks::codec::{put_f64, put_signed, put_str, put_varint, Reader};

const ALL: std::ops::Range<i64> = i64::MIN..i64::MAX;

fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x7DA_2026),
        failure_persistence: None,
        ..Config::default()
    }
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["u1", "u2", "generate", "/v1/g", "", "ü-名"])
            .prop_map(String::from),
        "\\PC{0,24}",
    ]
}

fn property_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        text().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        Just(Value::Null),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    let ids = (
        text(),
        prop::option::of(text()),
        text(),
        prop::option::of(text()),
    );
    let measures = (
        prop::option::of(any::<u16>()),
        prop::option::of(prop_oneof![
            (0u64..10_000_000).prop_map(|m| m as f64 / 1000.0),
            0.0f64..1e9,
        ]),
        prop::option::of(text()),
        prop::collection::btree_map("[a-z$]{1,8}", property_value(), 0..4),
    );
    (1_000_000_000_000i64..4_000_000_000_000, ids, measures).prop_map(
        |(t, (user_id, session_id, feature, route), (status, latency_ms, error, props))| Event {
            timestamp: Timestamp(t),
            user_id,
            session_id,
            feature,
            route,
            status,
            latency_ms,
            error,
            properties: props.into_iter().collect::<Map<String, Value>>(),
        },
    )
}

fn process() -> impl Strategy<Value = ProcessSample> {
    (
        any::<u32>(),
        text(),
        0f32..6400.0,
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
    )
        .prop_map(
            |(pid, name, cpu_percent, rss_bytes, virtual_bytes, threads, open_fds, uptime_secs)| {
                ProcessSample {
                    pid,
                    name,
                    cpu_percent,
                    rss_bytes,
                    virtual_bytes,
                    threads,
                    open_fds,
                    uptime_secs,
                }
            },
        )
}

fn host_sample() -> impl Strategy<Value = HostSample> {
    let gauges = (
        prop_oneof![(0u32..10_000).prop_map(|c| c as f32 / 100.0), 0f32..100.0],
        prop::collection::vec(0f32..100.0, 0..6),
        [0f64..512.0, 0f64..512.0, 0f64..512.0],
    );
    let memory = prop::array::uniform4(any::<u64>());
    let io = prop::array::uniform10(any::<u64>());
    (
        1_000_000_000_000i64..4_000_000_000_000,
        gauges,
        memory,
        io,
        prop::option::of(process()),
    )
        .prop_map(
            |(t, (cpu_percent, cpu_per_core, load), m, io, process)| HostSample {
                timestamp: Timestamp(t),
                cpu_percent,
                cpu_per_core,
                mem_total_bytes: m[0],
                mem_used_bytes: m[1],
                swap_total_bytes: m[2],
                swap_used_bytes: m[3],
                load,
                disk_total_bytes: io[0],
                disk_available_bytes: io[1],
                disk_read_bytes: io[2],
                disk_written_bytes: io[3],
                net_rx_bytes: io[4],
                net_tx_bytes: io[5],
                net_rx_packets: io[6],
                net_tx_packets: io[7],
                net_rx_errors: io[8],
                net_tx_errors: io[9],
                process,
            },
        )
}

/// A block of the given format version around arbitrary bytes, so decoding gets past the
/// version byte and the decompression into the parser itself.
fn wrapped(version: u8, payload: &[u8]) -> Vec<u8> {
    let mut block = vec![version];
    block.extend(zstd::encode_all(payload, 1).unwrap());
    block
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn event_blocks_round_trip(events in prop::collection::vec(event(), 0..120)) {
        let block = columns::encode(&events);
        prop_assert_eq!(columns::decode(&block, columns::Properties::Read, ALL).unwrap(), events);
    }

    #[test]
    fn event_blocks_decode_exactly_the_range_asked(
        events in prop::collection::vec(event(), 1..60),
        a in 1_000_000_000_000i64..4_000_000_000_000,
        len in 0i64..1_500_000_000_000,
    ) {
        let within = a..a.saturating_add(len);
        let wanted: Vec<Event> = events.iter().filter(|e| within.contains(&e.timestamp.0)).cloned().collect();
        let block = columns::encode(&events);
        prop_assert_eq!(columns::decode(&block, columns::Properties::Read, within).unwrap(), wanted);
    }

    #[test]
    fn sample_blocks_round_trip(agent in text(), batch in prop::collection::vec(host_sample(), 0..80)) {
        let (back_agent, back) = samples::decode(&samples::encode(&agent, &batch)).unwrap();
        prop_assert_eq!(back_agent, agent);
        prop_assert_eq!(back, batch);
    }

    #[test]
    fn damaged_blocks_are_errors_never_panics(
        events in prop::collection::vec(event(), 1..30),
        garbage in prop::collection::vec(any::<u8>(), 0..400),
        cut in any::<prop::sample::Index>(),
    ) {
        let block = columns::encode(&events);
        let _ = columns::decode(&block[..cut.index(block.len())], columns::Properties::Read, ALL);
        let _ = columns::decode(&wrapped(columns::VERSION, &garbage), columns::Properties::Read, ALL);
        let _ = columns::decode_facts(&wrapped(columns::VERSION, &garbage), columns::Properties::Read, ALL);
        let _ = samples::decode(&wrapped(samples::VERSION, &garbage));
        let _ = samples::decode(&garbage);
    }

    #[test]
    fn byte_codecs_round_trip(
        v in any::<u64>(), s in any::<i64>(), text in "\\PC{0,40}", f in any::<f64>(),
    ) {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        put_signed(&mut out, s);
        put_str(&mut out, &text);
        put_f64(&mut out, f);
        let mut r = Reader::new(&out);
        prop_assert_eq!(r.varint().unwrap(), v);
        prop_assert_eq!(r.signed().unwrap(), s);
        prop_assert_eq!(r.str().unwrap(), text.as_str());
        prop_assert_eq!(r.f64().unwrap().to_bits(), f.to_bits());
        prop_assert!(r.is_done());
    }

    #[test]
    fn quantiles_stay_within_the_relative_error(
        values in prop::collection::vec(prop_oneof![Just(0.0), 1e-6f64..1e9, 0.0f64..2000.0], 1..2000),
        q in 0.0f64..=1.0,
    ) {
        let mut sketch = Sketch::new();
        values.iter().for_each(|v| sketch.add(*v));
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let truth = sorted[(q * (sorted.len() - 1) as f64).floor() as usize];
        let got = sketch.quantile(q).unwrap();
        prop_assert!((got - truth).abs() <= RELATIVE_ERROR * truth + ZERO, "q {q}: {got} for {truth}");
    }

    #[test]
    fn sketches_merge_like_their_union_and_survive_encoding(
        a in prop::collection::vec(0.0f64..1e6, 0..500),
        b in prop::collection::vec(0.0f64..1e6, 0..500),
    ) {
        let of = |vs: &[f64]| { let mut s = Sketch::new(); vs.iter().for_each(|v| s.add(*v)); s };
        let mut merged = of(&a);
        merged.merge(&of(&b));
        prop_assert_eq!(&merged, &of(&[a.as_slice(), b.as_slice()].concat()));
        let mut bytes = Vec::new();
        merged.encode(&mut bytes);
        prop_assert_eq!(Sketch::decode(&mut Reader::new(&bytes)).unwrap(), merged);
    }
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn distinct_counts_are_exact_when_small_and_close_when_large(
        n in prop_oneof![1usize..=512, 513usize..40_000],
        salt in any::<u64>(),
    ) {
        let mut d = Distinct::default();
        for i in 0..n {
            // Each value twice: duplicates must not count.
            d.add(&format!("{salt}-{i}"));
            d.add(&format!("{salt}-{i}"));
        }
        let count = d.count() as f64;
        if n <= 512 {
            prop_assert_eq!(count, n as f64);
        } else {
            // 4,096 registers: 1.6 % standard error; 8 % is five of them.
            prop_assert!((count - n as f64).abs() <= 0.08 * n as f64, "{count} for {n}");
        }
        let mut bytes = Vec::new();
        d.encode(&mut bytes);
        prop_assert_eq!(Distinct::decode(&mut Reader::new(&bytes)).unwrap(), d);
    }

    #[test]
    fn distinct_sketches_merge_like_their_union(
        a in 0usize..3000, b in 0usize..3000, overlap in 0usize..1000,
    ) {
        let of = |r: std::ops::Range<usize>| { let mut d = Distinct::default(); r.for_each(|i| d.add(&i.to_string())); d };
        let mut merged = of(0..a + overlap);
        merged.merge(&of(a..a + overlap + b));
        prop_assert_eq!(merged.count(), of(0..a + overlap + b).count());
    }
}
