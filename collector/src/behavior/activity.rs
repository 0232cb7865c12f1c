//! The events of a range reduced to per-user columns (time, feature, failure and, for a
//! breakdown, one property's value), each user's events oldest first: what every behavioral
//! analysis reads. Built from the store's event facts without materialising events.

use fxhash::FxHashMap;
use serde_json::{Map, Value};
use tda_schema::Event;

use crate::query::Filter;
use crate::store::facts::{Facts, FactsBuilder};
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
    names: Vec<Box<str>>,
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
        let mut loader = Loader::new(filter, breakdown);
        let properties = breakdown.is_some() || !filter.labels.is_empty();
        store.scan_facts(from, to, properties, &mut |f| loader.add(f))?;
        Ok(loader.finish())
    }

    /// The activity of some events (for tests and small inputs).
    pub fn of_events(events: &[Event], breakdown: Option<&str>) -> Activity {
        let filter = Filter::default();
        let mut loader = Loader::new(&filter, breakdown);
        let mut b = FactsBuilder::new(breakdown.is_some());
        events.iter().for_each(|e| b.push(e));
        loader.add(&b.take());
        loader.finish()
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
            name: &self.names[u],
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
        order.sort_unstable_by(|a, b| self.names[*a].cmp(&self.names[*b]));
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

/// A dictionary from words to dense ids.
#[derive(Debug, Default)]
struct Interner {
    words: Vec<Box<str>>,
    ids: FxHashMap<Box<str>, u32>,
}

impl Interner {
    fn id(&mut self, word: &str) -> u32 {
        if let Some(i) = self.ids.get(word) {
            return *i;
        }
        let i = self.words.len() as u32;
        self.words.push(word.into());
        self.ids.insert(word.into(), i);
        i
    }
}

/// Gathers facts block by block, then groups them by user.
struct Loader<'a> {
    filter: &'a Filter,
    breakdown: Option<&'a str>,
    users: Interner,
    features: Interner,
    values: Interner,
    user: Vec<u32>,
    ts: Vec<i64>,
    feature: Vec<u32>,
    error: Vec<bool>,
    value: Vec<u32>,
}

impl<'a> Loader<'a> {
    fn new(filter: &'a Filter, breakdown: Option<&'a str>) -> Self {
        Loader {
            filter,
            breakdown,
            users: Interner::default(),
            features: Interner::default(),
            values: Interner::default(),
            user: Vec::new(),
            ts: Vec::new(),
            feature: Vec::new(),
            error: Vec::new(),
            value: Vec::new(),
        }
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
                .all(|(k, v)| crate::query::label_is(props.get(k), v));
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

    fn add(&mut self, f: &Facts) {
        let filter = self.filter;
        let users: Vec<u32> = f
            .users
            .iter()
            .map(|w| match &filter.user {
                Some(u) if u != w => SKIP,
                _ => self.users.id(w),
            })
            .collect();
        let features: Vec<u32> = f
            .features
            .iter()
            .map(|w| match &filter.feature {
                Some(x) if x != w => SKIP,
                _ => self.features.id(w),
            })
            .collect();
        let props = (!f.property_rows.is_empty()).then(|| self.property_rows(f));
        self.reserve(f.len());
        for i in 0..f.len() {
            let (u, ft) = (
                users[f.user_rows[i] as usize],
                features[f.feature_rows[i] as usize],
            );
            if u == SKIP || ft == SKIP || filter.status.is_some_and(|s| s != f.statuses[i]) {
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
            self.user.push(u);
            self.ts.push(f.timestamps[i]);
            self.feature.push(ft);
            self.error.push(f.errors[i]);
        }
    }

    fn reserve(&mut self, n: usize) {
        self.user.reserve(n);
        self.ts.reserve(n);
        self.feature.reserve(n);
        self.error.reserve(n);
    }

    /// Groups the rows by user (a counting sort, so each user's rows keep the store's order),
    /// then puts each user's rows in time order; users without rows are dropped.
    fn finish(self) -> Activity {
        let mut count = vec![0usize; self.users.words.len()];
        for u in &self.user {
            count[*u as usize] += 1;
        }
        let mut names = Vec::new();
        let mut new_id = vec![u32::MAX; count.len()];
        let mut starts = vec![0usize];
        for (u, name) in self.users.words.into_iter().enumerate() {
            if count[u] > 0 {
                new_id[u] = names.len() as u32;
                names.push(name);
                starts.push(starts[starts.len() - 1] + count[u]);
            }
        }
        let mut next: Vec<usize> = starts[..starts.len() - 1].to_vec();
        let slot: Vec<usize> = self
            .user
            .iter()
            .map(|u| {
                let n = &mut next[new_id[*u as usize] as usize];
                *n += 1;
                *n - 1
            })
            .collect();
        let mut a = Activity {
            names,
            features: self.features.words,
            values: self.values.words,
            ts: scatter(&self.ts, &slot),
            feature: scatter(&self.feature, &slot),
            error: scatter(&self.error, &slot),
            value: scatter(&self.value, &slot),
            starts,
        };
        a.sort_each_user();
        a
    }
}

/// `out[slot[i]] = rows[i]`.
fn scatter<T: Copy + Default>(rows: &[T], slot: &[usize]) -> Vec<T> {
    if rows.is_empty() {
        return Vec::new();
    }
    let mut out = vec![T::default(); rows.len()];
    for (v, s) in rows.iter().zip(slot) {
        out[*s] = *v;
    }
    out
}

impl Activity {
    /// Puts each user's rows in time order (stable), where they are not already.
    fn sort_each_user(&mut self) {
        for u in 0..self.len() {
            let r = self.starts[u]..self.starts[u + 1];
            if self.ts[r.clone()].is_sorted() {
                continue;
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
            apply(&mut self.ts, &order, r.start);
            apply(&mut self.feature, &order, r.start);
            apply(&mut self.error, &order, r.start);
            apply(&mut self.value, &order, r.start);
        }
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
        let u = a.user(0);
        assert_eq!(u.name, "a");
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
        let mut loader = Loader::new(&only_y, None);
        let mut b = FactsBuilder::new(false);
        events.iter().for_each(|e| b.push(e));
        loader.add(&b.take());
        let y = loader.finish();
        assert_eq!((y.len(), y.events()), (2, 2));
        assert_eq!(y.by_name(), vec![0, 1]);
    }
}
