//! Reads that concurrent requests share.
//!
//! Many requests often ask MongoDB the same thing at once: every browser tab, `/events` stream
//! and polling client of one upload asks for its status, and each `/status` of a queued job
//! needs the same history of recent jobs. [`SharedReads`] makes one read per key at a time and
//! gives its result to every request that was already waiting when that read **started**, never
//! to one that arrived while it ran: such a request waits for the next read. So every answer is
//! as fresh as a read of its own would be (it reflects MongoDB at some moment after the request
//! arrived), and under load a key costs one read per read-time instead of one per request.

use std::{
    collections::HashMap,
    future::Future,
    hash::Hash,
    sync::{Arc, Mutex, PoisonError},
};

use tokio::time::Instant;

/// One read at a time per key, its result shared by the requests that waited for it.
#[derive(Debug)]
pub struct SharedReads<K, V> {
    /// The keys being read or waited for; a key is forgotten when nobody waits for it.
    keys: Mutex<HashMap<K, Arc<Slot<V>>>>,
}

/// One key's last read: when it started and what it found. Held while reading, so the
/// requests that arrive meanwhile queue behind it (tokio's mutex is fair: first come, first
/// served).
#[derive(Debug)]
struct Slot<V> {
    last: tokio::sync::Mutex<Option<(Instant, V)>>,
}

impl<K, V> Default for SharedReads<K, V> {
    fn default() -> Self {
        Self {
            keys: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> SharedReads<K, V> {
    /// What `read` finds for `key`: the result of a read that started after this call, either
    /// one it makes itself or one another caller made meanwhile. If the caller is dropped (its
    /// client went away), its read is abandoned and the next waiter reads instead.
    pub async fn read<F, Fut>(&self, key: K, read: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let asked_at = Instant::now();
        let slot = {
            let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(keys.entry(key.clone()).or_insert_with(|| {
                Arc::new(Slot {
                    last: tokio::sync::Mutex::new(None),
                })
            }))
        };
        let forget = Forget {
            reads: self,
            key,
            slot: &slot,
        };
        let value = {
            let mut last = slot.last.lock().await;
            match &*last {
                Some((started, value)) if *started > asked_at => value.clone(),
                _ => {
                    let started = Instant::now();
                    let value = read().await;
                    *last = Some((started, value.clone()));
                    value
                }
            }
        };
        drop(forget);
        value
    }

    /// How many keys are being read or waited for (for tests: none once all callers are done).
    pub fn keys_in_use(&self) -> usize {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Removes a key nobody else waits for when its last caller is done, however it is done
/// (answered or dropped), so the map holds only keys in use.
struct Forget<'a, K: Eq + Hash, V> {
    reads: &'a SharedReads<K, V>,
    key: K,
    slot: &'a Arc<Slot<V>>,
}

impl<K: Eq + Hash, V> Drop for Forget<'_, K, V> {
    fn drop(&mut self) {
        let mut keys = self
            .reads
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The map's reference and this caller's: nobody else holds the slot, and nobody can
        // take it while the map is locked.
        if Arc::strong_count(self.slot) == 2 {
            keys.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicUsize, Ordering},
        time::Duration,
    };

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_waiting_when_a_read_starts_share_it_and_later_ones_read_again() {
        let reads: Arc<SharedReads<u32, usize>> = Arc::default();
        let count = Arc::new(AtomicUsize::new(0));
        let read = |reads: Arc<SharedReads<u32, usize>>, count: Arc<AtomicUsize>| async move {
            reads
                .read(7, || async {
                    let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    n
                })
                .await
        };
        // The first starts read 1; the next five arrive while it runs and share read 2.
        let first = tokio::spawn(read(reads.clone(), count.clone()));
        tokio::time::sleep(Duration::from_millis(10)).await;
        let during: Vec<_> = (0..5)
            .map(|_| tokio::spawn(read(reads.clone(), count.clone())))
            .collect();
        assert_eq!(first.await.unwrap(), 1);
        for waiter in during {
            assert_eq!(
                waiter.await.unwrap(),
                2,
                "a read that started after it asked"
            );
        }
        assert_eq!(count.load(Ordering::SeqCst), 2);
        assert_eq!(reads.keys_in_use(), 0, "idle keys are forgotten");
        // Alone, a request reads for itself.
        assert_eq!(read(reads.clone(), count.clone()).await, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn keys_are_read_independently() {
        let reads: Arc<SharedReads<u32, u32>> = Arc::default();
        let slow = {
            let reads = reads.clone();
            tokio::spawn(async move {
                reads
                    .read(1, || async {
                        tokio::time::sleep(Duration::from_secs(10)).await;
                        1
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        // Not held up by the slow read of another key.
        let other =
            tokio::time::timeout(Duration::from_secs(1), reads.read(2, || async { 2 })).await;
        assert_eq!(other, Ok(2));
        assert_eq!(slow.await.unwrap(), 1);
        assert_eq!(reads.keys_in_use(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_read_is_made_again_by_the_next_waiter() {
        let reads: Arc<SharedReads<u32, &'static str>> = Arc::default();
        let abandoned = {
            let reads = reads.clone();
            tokio::spawn(async move {
                reads
                    .read(1, || async {
                        tokio::time::sleep(Duration::from_secs(10)).await;
                        "abandoned"
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        let waiter = {
            let reads = reads.clone();
            tokio::spawn(async move { reads.read(1, || async { "its own" }).await })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        abandoned.abort();
        assert_eq!(waiter.await.unwrap(), "its own");
        assert_eq!(reads.keys_in_use(), 0);
    }
}
