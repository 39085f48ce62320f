//! A bounded set of recently seen ids: enough memory to recognise a repeat, without growing
//! with the life of the process.

use std::collections::{HashSet, VecDeque};

/// The last `capacity` distinct ids, oldest forgotten first.
#[derive(Debug)]
pub(crate) struct RecentIds {
    order: VecDeque<u64>,
    set: HashSet<u64>,
    capacity: usize,
}

impl RecentIds {
    /// An empty set remembering at most `capacity` ids.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            order: VecDeque::new(),
            set: HashSet::new(),
            capacity,
        }
    }

    /// Records `id`; false if it was already there.
    pub(crate) fn insert(&mut self, id: u64) -> bool {
        self.insert_evicting(id).0
    }

    /// Records `id`: whether it was new, and the oldest id it pushed out, if any.
    pub(crate) fn insert_evicting(&mut self, id: u64) -> (bool, Option<u64>) {
        if !self.set.insert(id) {
            return (false, None);
        }
        self.order.push_back(id);
        let mut evicted = None;
        if self.order.len() > self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
            evicted = Some(old);
        }
        (true, evicted)
    }

    /// Forgets `id`.
    pub(crate) fn remove(&mut self, id: u64) {
        if self.set.remove(&id) {
            self.order.retain(|o| *o != id);
        }
    }

    /// Whether `id` is among the remembered ones.
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.set.contains(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_recognised_until_pushed_out_by_newer_ids() {
        let mut recent = RecentIds::new(3);
        assert!(recent.insert(1));
        assert!(!recent.insert(1));
        assert!(recent.insert(2));
        assert!(recent.insert(3));
        // A repeat does not refresh an id's age, so 1 is still the oldest.
        assert!(!recent.insert(1));
        assert!(recent.contains(1));
        assert!(recent.insert(4));
        assert!(!recent.contains(1));
        for id in [2, 3, 4] {
            assert!(recent.contains(id));
        }
        assert!(recent.insert(1));
        assert!(!recent.contains(2));
    }
}
