//! Bounded memories of the SDK intakes: the event ids seen lately (dedupe of retries) and the
//! anonymous ids linked to user ids (`$identify`, Segment `identify` and `alias`).

use std::collections::{HashMap, HashSet, VecDeque};

/// Event ids remembered for dedupe (a retried SDK batch arrives within minutes).
pub const RECENT_IDS: usize = 200_000;
/// Identity links remembered.
pub const IDENTITIES: usize = 200_000;

/// The last `cap` ids seen, oldest forgotten first.
#[derive(Debug)]
pub struct Recent {
    seen: HashSet<String>,
    order: VecDeque<String>,
    cap: usize,
}

impl Recent {
    /// Remembers at most `cap` ids.
    pub fn new(cap: usize) -> Self {
        Recent {
            seen: HashSet::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    /// Remembers `id`; false when it was already remembered (a repeat).
    pub fn first_time(&mut self, id: &str) -> bool {
        if self.seen.contains(id) {
            return false;
        }
        if self.order.len() == self.cap {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(id.to_string());
        self.order.push_back(id.to_string());
        true
    }

    /// Forgets ids just remembered (their events could not be taken after all).
    pub fn forget(&mut self, ids: &[String]) {
        for id in ids {
            self.seen.remove(id);
        }
        self.order.retain(|i| self.seen.contains(i));
    }
}

/// Anonymous ids and the user ids they were linked to, at most `cap`, oldest forgotten first.
#[derive(Debug)]
pub struct Identities {
    user_of: HashMap<String, String>,
    order: VecDeque<String>,
    cap: usize,
}

impl Identities {
    /// Remembers at most `cap` links.
    pub fn new(cap: usize) -> Self {
        Identities {
            user_of: HashMap::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    /// Links `anonymous` to `user`: later events of `anonymous` count under `user`.
    pub fn link(&mut self, anonymous: &str, user: &str) {
        if anonymous == user {
            return;
        }
        let user = self.user_of(user).to_string();
        if self.user_of.insert(anonymous.to_string(), user).is_none() {
            self.order.push_back(anonymous.to_string());
            if self.order.len() > self.cap {
                if let Some(old) = self.order.pop_front() {
                    self.user_of.remove(&old);
                }
            }
        }
    }

    /// The user id `id` counts under: its link, else itself.
    pub fn user_of<'a>(&'a self, id: &'a str) -> &'a str {
        self.user_of.get(id).map_or(id, String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_caught_until_forgotten() {
        let mut r = Recent::new(2);
        assert!(r.first_time("a") && r.first_time("b"));
        assert!(!r.first_time("a"));
        assert!(r.first_time("c"), "a third id pushes out the oldest");
        assert!(r.first_time("a"));
        r.forget(&["a".into()]);
        assert!(r.first_time("a"));
    }

    #[test]
    fn links_follow_to_the_user() {
        let mut ids = Identities::new(10);
        ids.link("anon-1", "user-7");
        ids.link("anon-2", "anon-1");
        assert_eq!(ids.user_of("anon-1"), "user-7");
        assert_eq!(ids.user_of("anon-2"), "user-7");
        assert_eq!(ids.user_of("someone"), "someone");
    }
}
