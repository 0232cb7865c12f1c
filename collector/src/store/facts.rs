//! Event facts in columns: a block's events reduced to what per-user analyses read (time, user,
//! feature, status, failure and, when asked, properties) with the block's dictionaries, so a
//! scan for behavioral analytics builds no event structs and copies each distinct word once.

use std::collections::HashMap;

use tda_schema::Event;

/// Distinct words of a block, stored end to end.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Words {
    text: String,
    ends: Vec<u32>,
}

impl Words {
    /// Adds a word; returns its index.
    pub fn push(&mut self, word: &str) -> u32 {
        self.text.push_str(word);
        self.ends.push(self.text.len() as u32);
        self.ends.len() as u32 - 1
    }

    /// Word `i`.
    pub fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.text[start..self.ends[i] as usize]
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The words in index order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// The facts of some events, one entry per event in every column.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Facts {
    /// Epoch ms.
    pub timestamps: Vec<i64>,
    /// Distinct user ids.
    pub users: Words,
    /// Per event, index into `users`.
    pub user_rows: Vec<u32>,
    /// Distinct features.
    pub features: Words,
    /// Per event, index into `features`.
    pub feature_rows: Vec<u32>,
    /// Per event, the HTTP status (0 when absent).
    pub statuses: Vec<u16>,
    /// Per event, whether it failed (an error text, or a 5xx status).
    pub errors: Vec<bool>,
    /// Distinct properties objects as JSON text (only when properties were asked for).
    pub properties: Words,
    /// Per event, 1 + index into `properties`, 0 for none (empty unless asked for).
    pub property_rows: Vec<u32>,
    /// The reader's own ids for `users` (the store leaves it empty; a scan's `prepare` may
    /// fill it on the decoding thread).
    pub user_ids: Vec<u32>,
    /// The reader's own ids for `features`, like `user_ids`.
    pub feature_ids: Vec<u32>,
}

impl Facts {
    /// Number of events.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// Keeps only the events for which `keep(i)` holds (dictionaries are left whole).
    pub fn retain(&mut self, keep: impl Fn(usize) -> bool) {
        let mask: Vec<bool> = (0..self.len()).map(keep).collect();
        fn filter<T: Copy>(v: &mut Vec<T>, mask: &[bool]) {
            if v.len() == mask.len() {
                let mut i = 0;
                v.retain(|_| {
                    i += 1;
                    mask[i - 1]
                });
            }
        }
        filter(&mut self.timestamps, &mask);
        filter(&mut self.user_rows, &mask);
        filter(&mut self.feature_rows, &mask);
        filter(&mut self.statuses, &mask);
        filter(&mut self.errors, &mask);
        filter(&mut self.property_rows, &mask);
    }
}

/// Builds [`Facts`] from events, for backends that do not store columns.
#[derive(Debug, Default)]
pub struct FactsBuilder {
    facts: Facts,
    with_properties: bool,
    users: HashMap<String, u32>,
    features: HashMap<String, u32>,
    properties: HashMap<String, u32>,
}

impl FactsBuilder {
    /// An empty builder; `with_properties` keeps each event's properties.
    pub fn new(with_properties: bool) -> Self {
        FactsBuilder {
            with_properties,
            ..Default::default()
        }
    }

    /// Adds one event.
    pub fn push(&mut self, e: &Event) {
        let f = &mut self.facts;
        f.timestamps.push(e.timestamp.0);
        f.user_rows
            .push(intern(&mut self.users, &mut f.users, &e.user_id));
        f.feature_rows
            .push(intern(&mut self.features, &mut f.features, &e.feature));
        f.statuses.push(e.status.unwrap_or(0));
        f.errors.push(e.is_error());
        if self.with_properties {
            let row = if e.properties.is_empty() {
                0
            } else {
                let text = serde_json::to_string(&e.properties).unwrap_or_default();
                1 + intern(&mut self.properties, &mut f.properties, &text)
            };
            f.property_rows.push(row);
        }
    }

    /// Events added so far.
    pub fn len(&self) -> usize {
        self.facts.len()
    }

    /// Whether none were added.
    pub fn is_empty(&self) -> bool {
        self.facts.is_empty()
    }

    /// The facts, leaving the builder empty.
    pub fn take(&mut self) -> Facts {
        self.users.clear();
        self.features.clear();
        self.properties.clear();
        std::mem::take(&mut self.facts)
    }
}

fn intern(index: &mut HashMap<String, u32>, words: &mut Words, word: &str) -> u32 {
    if let Some(i) = index.get(word) {
        return *i;
    }
    let i = words.push(word);
    index.insert(word.to_string(), i);
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_keeps_one_word_per_distinct_value() {
        let ev = |u: &str, f: &str, status: u16| -> Event {
            serde_json::from_value(serde_json::json!({
                "timestamp": 1_795_392_000_000i64, "user_id": u, "feature": f, "status": status,
                "properties": {"plan": "pro"}
            }))
            .unwrap()
        };
        let mut b = FactsBuilder::new(true);
        b.push(&ev("a", "x", 200));
        b.push(&ev("b", "x", 503));
        b.push(&ev("a", "y", 200));
        let mut f = b.take();
        assert_eq!(f.users.iter().collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(f.user_rows, vec![0, 1, 0]);
        assert_eq!(f.feature_rows, vec![0, 0, 1]);
        assert_eq!(f.errors, vec![false, true, false]);
        assert_eq!(f.property_rows, vec![1, 1, 1]);
        assert_eq!(f.properties.get(0), r#"{"plan":"pro"}"#);
        f.retain(|i| i != 1);
        assert_eq!((f.user_rows, f.statuses), (vec![0, 0], vec![200, 200]));
        assert!(b.is_empty());
    }
}
