//! The events of a range reduced to per-user columns (time, feature, failure and, for a
//! breakdown, one property's value), each user's events oldest first: what every behavioral
//! analysis reads. Built from the store's event facts without materialising events.

use std::hash::BuildHasher;
use std::sync::Mutex;

use hashbrown::HashTable;
use serde_json::{Map, Value};
use tda_schema::Event;

use crate::store::facts::{Facts, FactsBuilder, Words};
use crate::store::Filter;
use crate::store::{Storage, StoreError};

/// A feature id that matches no feature (a step naming a feature nobody used).
pub const NO_FEATURE: u32 = u32::MAX;
/// Marks a dictionary word the filter excludes.
const SKIP: u32 = u32::MAX;
/// The breakdown value of events without the property.
pub const NONE_VALUE: &str = "(none)";

/// Every user's events of a range, in columns.
#[derive(Debug, Default)]
pub struct Activity {
    names: Words,
    features: Vec<Box<str>>,
    values: Vec<Box<str>>,
    /// User `u`'s events are rows `starts[u]..starts[u + 1]`.
    starts: Vec<usize>,
    ts: Vec<i64>,
    feature: Vec<u32>,
    error: Vec<bool>,
    /// Per row, index into `values` (empty without a breakdown).
    value: Vec<u32>,
}

/// One user's events, oldest first (ties in the order stored).
#[derive(Debug, Clone, Copy)]
pub struct User<'a> {
    /// The user id.
    pub name: &'a str,
    /// Epoch ms of each event.
    pub ts: &'a [i64],
    /// Feature id of each event.
    pub feature: &'a [u32],
    /// Whether each event failed.
    pub error: &'a [bool],
    /// Breakdown value id of each event (empty without a breakdown).
    pub value: &'a [u32],
}

impl User<'_> {
    /// Number of events (at least one).
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// Whether there are none (never, for users of an [`Activity`]).
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Time of the first event.
    pub fn first(&self) -> i64 {
        self.ts.first().copied().unwrap_or(0)
    }

    /// Time of the last event.
    pub fn last(&self) -> i64 {
        self.ts.last().copied().unwrap_or(0)
    }
}

impl Activity {
    /// The events of `[from, to)` passing `filter`; with `breakdown`, each event's value of
    /// that property is kept too.
    pub fn load(
        store: &dyn Storage,
        from: i64,
        to: i64,
        filter: &Filter,
        breakdown: Option<&str>,
    ) -> Result<Activity, StoreError> {
        let started = std::time::Instant::now();
        let (dictionaries, mut loader) = Loader::new(filter, breakdown);
        let properties = breakdown.is_some() || !filter.labels.is_empty();
        let prepare = |f: &mut Facts| dictionaries.prepare(f);
        store.scan_facts(from, to, properties, &prepare, &mut |f| loader.add(f))?;
        let scanned = started.elapsed();
        let activity = loader.finish(dictionaries);
        tracing::debug!(
            events = activity.events(),
            users = activity.len(),
            scan_ms = scanned.as_millis() as u64,
            group_ms = (started.elapsed() - scanned).as_millis() as u64,
            "activity loaded"
        );
        Ok(activity)
    }

    /// The activity of some events (for tests and small inputs).
    pub fn of_events(events: &[Event], breakdown: Option<&str>) -> Activity {
        Self::of_events_filtered(events, &Filter::default(), breakdown)
    }

    fn of_events_filtered(events: &[Event], filter: &Filter, breakdown: Option<&str>) -> Activity {
        let (dictionaries, mut loader) = Loader::new(filter, breakdown);
        let mut b = FactsBuilder::new(breakdown.is_some());
        events.iter().for_each(|e| b.push(e));
        let mut facts = b.take();
        dictionaries.prepare(&mut facts);
        loader.add(&facts);
        loader.finish(dictionaries)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no users.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Number of events.
    pub fn events(&self) -> usize {
        self.ts.len()
    }

    /// User `u`.
    pub fn user(&self, u: usize) -> User<'_> {
        let r = self.starts[u]..self.starts[u + 1];
        User {
            name: self.names.get(u),
            ts: &self.ts[r.clone()],
            feature: &self.feature[r.clone()],
            error: &self.error[r.clone()],
            value: if self.value.is_empty() {
                &[]
            } else {
                &self.value[r]
            },
        }
    }

    /// Every user, in no particular order (see [`Activity::by_name`]).
    pub fn users(&self) -> impl Iterator<Item = User<'_>> {
        (0..self.len()).map(|u| self.user(u))
    }

    /// User indexes ordered by user id, for answers that list users.
    pub fn by_name(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_unstable_by(|a, b| self.names.get(*a).cmp(self.names.get(*b)));
        order
    }

    /// Number of distinct features.
    pub fn feature_count(&self) -> usize {
        self.features.len()
    }

    /// The name of feature `id`.
    pub fn feature_name(&self, id: u32) -> &str {
        &self.features[id as usize]
    }

    /// The id of a feature, [`NO_FEATURE`] when no event has it.
    pub fn feature_id(&self, name: &str) -> u32 {
        self.features
            .iter()
            .position(|f| &**f == name)
            .map_or(NO_FEATURE, |i| i as u32)
    }

    /// The breakdown value `id`.
    pub fn value_name(&self, id: u32) -> &str {
        &self.values[id as usize]
    }
}

/// A dictionary from words to dense ids, the words stored end to end (one allocation for all).
/// Words of up to 15 bytes (user ids usually are) are also kept in the table itself, so a
/// lookup compares without reading the word store.
#[derive(Default)]
struct Interner {
    words: Words,
    table: HashTable<(Inline, u32)>,
}

/// A word of up to 15 bytes and its length, or (length byte 255) a longer one.
type Inline = [u8; 16];

fn inline(word: &str) -> Inline {
    let mut key = [0u8; 16];
    match word.len() {
        n @ 0..=15 => {
            key[..n].copy_from_slice(word.as_bytes());
            key[15] = n as u8;
        }
        _ => key[15] = 255,
    }
    key
}

type Hasher = foldhash::fast::RandomState;

impl Interner {
    /// The id of `word`, whose hash by `hasher` is `h`.
    fn id(&mut self, word: &str, h: u64, hasher: &Hasher) -> u32 {
        let Interner { words, table } = self;
        let key = inline(word);
        let same = |(k, i): &(Inline, u32)| {
            *k == key && (key[15] != 255 || words.get(*i as usize) == word)
        };
        if let Some((_, i)) = table.find(h, same) {
            return *i;
        }
        let i = words.push(word);
        table.insert_unique(h, (key, i), |(_, i)| {
            hasher.hash_one(words.get(*i as usize))
        });
        i
    }
}

/// An interner split in shards by hash, so the threads decoding blocks intern their words at
/// once; an id is `local id x SHARDS + shard`.
struct Shared {
    shards: Vec<Mutex<Interner>>,
    hasher: Hasher,
}

const SHARDS: usize = 16;

impl Shared {
    fn new() -> Self {
        Shared {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: Hasher::default(),
        }
    }

    /// The ids of a block's words (taking each shard's lock once); [`SKIP`] where `keep` says no.
    fn ids(&self, words: &Words, keep: impl Fn(&str) -> bool) -> Vec<u32> {
        let mut buckets: Vec<Vec<(usize, u64)>> = vec![Vec::new(); SHARDS];
        for (i, w) in words.iter().enumerate().filter(|(_, w)| keep(w)) {
            let h = self.hasher.hash_one(w);
            buckets[(h >> 50) as usize % SHARDS].push((i, h));
        }
        let mut out = vec![SKIP; words.len()];
        for (s, bucket) in buckets.iter().enumerate().filter(|(_, b)| !b.is_empty()) {
            let mut shard = self.shards[s].lock().unwrap_or_else(|p| p.into_inner());
            for (i, h) in bucket {
                out[*i] = shard.id(words.get(*i), *h, &self.hasher) * SHARDS as u32 + s as u32;
            }
        }
        out
    }

    /// The shards' words, to look ids up in.
    fn into_words(self) -> Vec<Words> {
        let shards = self.shards.into_iter();
        shards
            .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()).words)
            .collect()
    }
}

/// A small single-threaded dictionary (features, breakdown values).
#[derive(Default)]
struct Small {
    interner: Interner,
    hasher: Hasher,
}

impl Small {
    fn id(&mut self, word: &str) -> u32 {
        let h = self.hasher.hash_one(word);
        self.interner.id(word, h, &self.hasher)
    }
}

/// The dictionaries of a load, shared by the threads decoding blocks.
struct Dictionaries<'a> {
    filter: &'a Filter,
    users: Shared,
    features: Mutex<Small>,
}

impl Dictionaries<'_> {
    /// On the decoding thread: the ids of the block's users and features (the filter's
    /// exclusions as [`SKIP`]).
    fn prepare(&self, f: &mut Facts) {
        let filter = self.filter;
        f.user_ids = self
            .users
            .ids(&f.users, |w| filter.user.as_ref().is_none_or(|u| u == w));
        let mut features = self.features.lock().unwrap_or_else(|p| p.into_inner());
        f.feature_ids = f
            .features
            .iter()
            .map(|w| match &filter.feature {
                Some(x) if x != w => SKIP,
                _ => features.id(w),
            })
            .collect();
    }
}

/// Gathers the rows of each block (on the scanning thread), then groups them by user.
struct Loader<'a> {
    filter: &'a Filter,
    breakdown: Option<&'a str>,
    values: Small,
    /// Per interner id, the user's number here (in order of first row; `u32::MAX`: none yet).
    dense: Vec<u32>,
    /// Per user number, its interner id.
    interned: Vec<u32>,
    /// Per row, the user's number.
    user: Vec<u32>,
    ts: Vec<i64>,
    feature: Vec<u32>,
    error: Vec<bool>,
    value: Vec<u32>,
}

impl<'a> Loader<'a> {
    fn new(filter: &'a Filter, breakdown: Option<&'a str>) -> (Dictionaries<'a>, Self) {
        let dictionaries = Dictionaries {
            filter,
            users: Shared::new(),
            features: Mutex::default(),
        };
        let loader = Loader {
            filter,
            breakdown,
            values: Small::default(),
            dense: Vec::new(),
            interned: Vec::new(),
            user: Vec::new(),
            ts: Vec::new(),
            feature: Vec::new(),
            error: Vec::new(),
            value: Vec::new(),
        };
        (dictionaries, loader)
    }

    /// Per properties word (index 0: none), whether the label filters pass and the breakdown
    /// value's id.
    fn property_rows(&mut self, f: &Facts) -> Vec<(bool, u32)> {
        let empty = Map::new();
        let mut judge = |props: &Map<String, Value>| {
            let pass = self
                .filter
                .labels
                .iter()
                .all(|(k, v)| crate::store::select::label_is(props.get(k), v));
            let value = self.breakdown.map_or(0, |key| match props.get(key) {
                Some(Value::String(s)) => self.values.id(s),
                Some(other) => self.values.id(&other.to_string()),
                None => self.values.id(NONE_VALUE),
            });
            (pass, value)
        };
        let mut out = vec![judge(&empty)];
        for text in f.properties.iter() {
            let props: Map<String, Value> = serde_json::from_str(text).unwrap_or_default();
            out.push(judge(&props));
        }
        out
    }

    /// On this thread: the block's rows that pass the filter (after [`Loader::prepare`]).
    fn add(&mut self, f: &Facts) {
        let filter = self.filter;
        let props = (!f.property_rows.is_empty()).then(|| self.property_rows(f));
        self.reserve(f.len());
        let mut numbers = vec![u32::MAX; f.user_ids.len()];
        for i in 0..f.len() {
            let (w, ft) = (
                f.user_rows[i] as usize,
                f.feature_ids[f.feature_rows[i] as usize],
            );
            if f.user_ids[w] == SKIP
                || ft == SKIP
                || filter.status.is_some_and(|s| s != f.statuses[i])
            {
                continue;
            }
            if let Some(p) = &props {
                let (pass, value) = p[f.property_rows[i] as usize];
                if !pass {
                    continue;
                }
                if self.breakdown.is_some() {
                    self.value.push(value);
                }
            }
            if numbers[w] == u32::MAX {
                numbers[w] = self.number(f.user_ids[w]);
            }
            self.user.push(numbers[w]);
            self.ts.push(f.timestamps[i]);
            self.feature.push(ft);
            self.error.push(f.errors[i]);
        }
    }

    /// The number of the user with interner id `id`, given on first sight.
    fn number(&mut self, id: u32) -> u32 {
        let i = id as usize;
        if i >= self.dense.len() {
            self.dense.resize((i + 1).next_power_of_two(), u32::MAX);
        }
        if self.dense[i] == u32::MAX {
            self.dense[i] = self.interned.len() as u32;
            self.interned.push(id);
        }
        self.dense[i]
    }

    fn reserve(&mut self, n: usize) {
        self.user.reserve(n);
        self.ts.reserve(n);
        self.feature.reserve(n);
        self.error.reserve(n);
    }

    /// Groups the rows by user (a counting sort, so each user's rows keep the store's order),
    /// then puts each user's rows in time order. Users are numbered in the order they first
    /// appear ([`Loader::number`]), so users active at the same time sit near each other and
    /// the scatter stays in cache far more than in hash order.
    fn finish(self, dictionaries: Dictionaries) -> Activity {
        let shard_words = dictionaries.users.into_words();
        let mut names = Words::default();
        for id in &self.interned {
            names.push(shard_words[*id as usize % SHARDS].get(*id as usize / SHARDS));
        }
        let mut count = vec![0u32; self.interned.len()];
        for u in &self.user {
            count[*u as usize] += 1;
        }
        let mut starts = Vec::with_capacity(count.len() + 1);
        starts.push(0usize);
        for c in &count {
            starts.push(starts[starts.len() - 1] + *c as usize);
        }
        let mut next: Vec<u32> = starts[..count.len()].iter().map(|s| *s as u32).collect();
        let slot: Vec<u32> = self
            .user
            .iter()
            .map(|u| {
                let n = &mut next[*u as usize];
                *n += 1;
                *n - 1
            })
            .collect();
        let (ts, (feature, error, value)) = std::thread::scope(|s| {
            let ts = s.spawn(|| scatter(&self.ts, &slot));
            let rest = (
                scatter(&self.feature, &slot),
                scatter(&self.error, &slot),
                scatter(&self.value, &slot),
            );
            (ts.join().unwrap_or_default(), rest)
        });
        let mut out = Columns {
            ts,
            feature,
            error,
            value,
        };
        let mut rows = out.parts();
        for w in starts.windows(2) {
            rows.sort_range(w[0]..w[1]);
        }
        Activity {
            names,
            features: (dictionaries.features.into_inner())
                .unwrap_or_else(|p| p.into_inner())
                .interner
                .words
                .iter()
                .map(Into::into)
                .collect(),
            values: self.values.interner.words.iter().map(Into::into).collect(),
            ts: out.ts,
            feature: out.feature,
            error: out.error,
            value: out.value,
            starts,
        }
    }
}

/// `out[slot[i]] = rows[i]`.
fn scatter<T: Copy + Default>(rows: &[T], slot: &[u32]) -> Vec<T> {
    if rows.is_empty() {
        return Vec::new();
    }
    let mut out = vec![T::default(); rows.len()];
    for (v, s) in rows.iter().zip(slot) {
        out[*s as usize] = *v;
    }
    out
}

/// The grouped columns.
struct Columns {
    ts: Vec<i64>,
    feature: Vec<u32>,
    error: Vec<bool>,
    value: Vec<u32>,
}

impl Columns {
    fn parts(&mut self) -> ColumnsMut<'_> {
        ColumnsMut {
            ts: &mut self.ts,
            feature: &mut self.feature,
            error: &mut self.error,
            value: &mut self.value,
        }
    }
}

/// The rows of [`Columns`], to sort in place.
struct ColumnsMut<'a> {
    ts: &'a mut [i64],
    feature: &'a mut [u32],
    error: &'a mut [bool],
    value: &'a mut [u32],
}

impl ColumnsMut<'_> {
    /// Puts rows `r` (one user's) in time order, stably, unless they are already.
    fn sort_range(&mut self, r: std::ops::Range<usize>) {
        if self.ts[r.clone()].is_sorted() {
            return;
        }
        let mut order: Vec<usize> = r.clone().collect();
        order.sort_by_key(|i| self.ts[*i]);
        fn apply<T: Copy>(col: &mut [T], order: &[usize], start: usize) {
            if col.is_empty() {
                return;
            }
            let sorted: Vec<T> = order.iter().map(|i| col[*i]).collect();
            col[start..start + sorted.len()].copy_from_slice(&sorted);
        }
        apply(self.ts, &order, r.start);
        apply(self.feature, &order, r.start);
        apply(self.error, &order, r.start);
        apply(self.value, &order, r.start);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::ev;
    use super::*;

    #[test]
    fn groups_by_user_in_time_order_and_filters() {
        let mut late = ev("a", "x", 5);
        late.properties.insert("plan".into(), "pro".into());
        let events = vec![late, ev("b", "y", 1), ev("a", "y", 2), ev("a", "x", 2)];
        let a = Activity::of_events(&events, Some("plan"));
        assert_eq!((a.len(), a.events()), (2, 4));
        let u = a.users().find(|u| u.name == "a").unwrap();
        let names: Vec<&str> = u.feature.iter().map(|f| a.feature_name(*f)).collect();
        assert_eq!(
            names,
            vec!["y", "x", "x"],
            "time order; ties keep their order"
        );
        let values: Vec<&str> = u.value.iter().map(|v| a.value_name(*v)).collect();
        assert_eq!(values, vec![NONE_VALUE, NONE_VALUE, "pro"]);
        assert_eq!(a.feature_id("y"), 1);
        assert_eq!(a.feature_id("nope"), NO_FEATURE);
        let only_y = Filter {
            feature: Some("y".into()),
            ..Filter::default()
        };
        let y = Activity::of_events_filtered(&events, &only_y, None);
        assert_eq!((y.len(), y.events()), (2, 2));
        let names: Vec<&str> = y.by_name().iter().map(|u| y.user(*u).name).collect();
        assert_eq!(names, vec!["a", "b"]);
    }
}
