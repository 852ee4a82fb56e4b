//! Plans by normalised statement, shared by every session and by the text and binary protocols.
//! A bounded LRU split into independently locked parts, so sessions on different cores rarely
//! wait for each other; each lookup holds one part's lock for a hash probe.

use std::hash::BuildHasher;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use engine::Plan;
use lru::LruCache;

const PARTS: usize = 8;

/// What the cache knows of a normalised statement.
#[derive(Debug)]
pub enum Cached {
    /// Its plan with bind variables, to bind to each execution's values.
    Template(Box<Plan>),
    /// Planned from its text every time: its template did not reproduce the plan of the text
    /// (or it is not a statement the cache takes).
    Uncacheable,
}

type Part = Mutex<LruCache<String, Arc<Cached>>>;

pub struct PlanCache {
    parts: Box<[Part]>,
    hasher: std::collections::hash_map::RandomState,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl PlanCache {
    pub fn new(capacity: usize) -> Self {
        let per_part = NonZeroUsize::new(capacity.div_ceil(PARTS).max(1)).expect("at least 1");
        PlanCache {
            parts: (0..PARTS)
                .map(|_| Mutex::new(LruCache::new(per_part)))
                .collect(),
            hasher: Default::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn part(&self, key: &str) -> &Part {
        &self.parts[self.hasher.hash_one(key) as usize % PARTS]
    }

    pub fn get(&self, key: &str) -> Option<Arc<Cached>> {
        self.part(key).lock().expect("plan cache").get(key).cloned()
    }

    /// Forgets every plan (after a reload: they name the old keyspaces and shards).
    pub fn clear(&self) {
        for part in self.parts.iter() {
            part.lock().expect("plan cache").clear();
        }
    }

    pub fn insert(&self, key: String, entry: Cached) {
        self.part(&key)
            .lock()
            .expect("plan cache")
            .put(key, Arc::new(entry));
    }

    pub fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    /// (hits, misses, plans held).
    pub fn stats(&self) -> (u64, u64, usize) {
        let len = self
            .parts
            .iter()
            .map(|p| p.lock().expect("plan cache").len())
            .sum();
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
            len,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_least_recently_used_first() {
        let cache = PlanCache::new(PARTS);
        for i in 0..100 {
            cache.insert(format!("k{i}"), Cached::Uncacheable);
        }
        let (_, _, len) = cache.stats();
        assert!(len <= PARTS, "{len}");
        // The last key inserted into a part is kept.
        assert!(cache.get("k99").is_some());
    }
}
