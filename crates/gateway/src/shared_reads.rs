//! Reads that concurrent requests share.
//!
//! Many requests often ask MongoDB about the same things at once: every browser tab, `/events`
//! stream and polling client of a conversion asks for its status, many users poll their own
//! conversions, and each `/status` of a queued job needs the same history of recent jobs.
//! [`SharedReads`] makes one read at a time, for every key asked since the previous read
//! started (a key asked by many requests is read once), and gives its result to the requests
//! that were waiting when that read **started**, never to one that arrived while it ran: such a
//! request waits for the next read. So every answer is as fresh as a read of its own would be
//! (it reflects MongoDB at some moment after the request arrived), and under load MongoDB sees
//! one read per read-time instead of one per request.

use std::{
    collections::HashMap,
    future::Future,
    hash::Hash,
    sync::{Arc, Mutex, PoisonError},
};

use tokio::sync::oneshot;

use crate::storage::StorageError;

/// Most keys one read asks for; more wait for the next read.
pub const MAX_KEYS_PER_READ: usize = 500;

/// One read at a time of the keys asked meanwhile, its results handed to those who asked.
#[derive(Debug)]
pub struct SharedReads<K, V> {
    pending: Arc<Mutex<Pending<K, V>>>,
}

/// Who waits for what.
#[derive(Debug)]
struct Pending<K, V> {
    /// A read task is running; it reads again for the keys below before it ends.
    reading: bool,
    /// The requests waiting for a read that has not started yet, by key.
    waiting: HashMap<K, Vec<oneshot::Sender<V>>>,
}

impl<K, V> Default for SharedReads<K, V> {
    fn default() -> Self {
        Self {
            pending: Arc::new(Mutex::new(Pending {
                reading: false,
                waiting: HashMap::new(),
            })),
        }
    }
}

impl<K, V> SharedReads<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// The value of `key`, from a read that starts after this call. `read` gets the keys of one
    /// read and answers a value for each; the first caller's `read` is the one used while reads
    /// follow each other (every caller passes the same). The reads run in a task of their own,
    /// so a caller that goes away (its client hung up) stops no one else's answer. `None` only
    /// if that task ended without answering (`read` left the key out or panicked).
    pub async fn read<F, Fut>(&self, key: K, read: F) -> Option<V>
    where
        F: Fn(Vec<K>) -> Fut + Send + 'static,
        Fut: Future<Output = HashMap<K, V>> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut pending = lock(&self.pending);
            pending.waiting.entry(key).or_default().push(answer);
            !std::mem::replace(&mut pending.reading, true)
        };
        if start {
            tokio::spawn(reads(Arc::clone(&self.pending), read));
        }
        answered.await.ok()
    }

    /// How many keys wait for a read (for tests: none once every caller is answered).
    pub fn keys_waiting(&self) -> usize {
        lock(&self.pending).waiting.len()
    }

    /// Whether a read task is running (for tests: none once every caller is answered).
    pub fn is_reading(&self) -> bool {
        lock(&self.pending).reading
    }
}

/// The error of a storage read whose shared read ended without an answer (a bug: see
/// [`SharedReads::read`]).
pub fn shared_read_lost() -> StorageError {
    StorageError::Io(std::io::Error::other(
        "the shared MongoDB read ended without an answer",
    ))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads for the keys waiting, again and again, until nobody waits.
async fn reads<K, V, F, Fut>(pending: Arc<Mutex<Pending<K, V>>>, read: F)
where
    K: Eq + Hash + Clone,
    V: Clone,
    F: Fn(Vec<K>) -> Fut,
    Fut: Future<Output = HashMap<K, V>>,
{
    let mut running = Running {
        pending: &pending,
        done: false,
    };
    loop {
        let batch: Vec<(K, Vec<oneshot::Sender<V>>)> = {
            let mut pending = lock(&pending);
            if pending.waiting.is_empty() {
                pending.reading = false;
                running.done = true;
                return;
            }
            let keys: Vec<K> = pending
                .waiting
                .keys()
                .take(MAX_KEYS_PER_READ)
                .cloned()
                .collect();
            keys.into_iter()
                .filter_map(|key| pending.waiting.remove_entry(&key))
                .collect()
        };
        let mut found = read(batch.iter().map(|(key, _)| key.clone()).collect()).await;
        for (key, answers) in batch {
            // Dropping the senders of a key left out tells its callers there is no answer.
            if let Some(value) = found.remove(&key) {
                for answer in answers {
                    // A caller that went away does not take its answer: nothing to do.
                    let _ = answer.send(value.clone());
                }
            }
        }
    }
}

/// If the read task ends without finishing (a panic in `read`), the next caller starts a new
/// one, and those waiting are told there is no answer rather than left waiting forever.
struct Running<'a, K, V> {
    pending: &'a Mutex<Pending<K, V>>,
    done: bool,
}

impl<K, V> Drop for Running<'_, K, V> {
    fn drop(&mut self) {
        if !self.done {
            let mut pending = lock(self.pending);
            pending.reading = false;
            pending.waiting.clear();
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

    /// Each key with the number of the read that answered it.
    type Answers = HashMap<u32, (u32, usize)>;
    type Reads = Arc<SharedReads<u32, (u32, usize)>>;
    type Reading = std::pin::Pin<Box<dyn Future<Output = Answers> + Send>>;

    /// A read of `keys` that takes 100 ms and answers each key with the read's number.
    fn counting(
        count: Arc<AtomicUsize>,
        keys_seen: Arc<Mutex<Vec<Vec<u32>>>>,
    ) -> impl Fn(Vec<u32>) -> Reading + Send + Clone + 'static {
        move |mut keys: Vec<u32>| {
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            keys.sort_unstable();
            keys_seen.lock().unwrap().push(keys.clone());
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                keys.into_iter().map(|k| (k, (k, n))).collect()
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn requests_waiting_when_a_read_starts_share_it_and_later_ones_wait_for_the_next() {
        let reads: Reads = Arc::default();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let read = counting(count.clone(), seen.clone());
        let ask = |key: u32| {
            let (reads, read) = (reads.clone(), read.clone());
            tokio::spawn(async move { reads.read(key, read).await })
        };
        // The first starts read 1 alone; those that arrive while it runs (two of them for the
        // same key) share read 2, one read for all their keys.
        let first = ask(1);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let during: Vec<_> = [1, 2, 3, 3].into_iter().map(ask).collect();
        assert_eq!(first.await.unwrap(), Some((1, 1)));
        for (waiter, key) in during.into_iter().zip([1, 2, 3, 3]) {
            assert_eq!(
                waiter.await.unwrap(),
                Some((key, 2)),
                "a read that started after it asked"
            );
        }
        assert_eq!(*seen.lock().unwrap(), vec![vec![1], vec![1, 2, 3]]);
        assert_eq!((reads.keys_waiting(), reads.is_reading()), (0, false));
        // Alone, a request is read for at once.
        assert_eq!(reads.read(9, read.clone()).await, Some((9, 3)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_that_goes_away_stops_no_one_else() {
        let reads: Reads = Arc::default();
        let read = counting(Arc::default(), Arc::default());
        let gone = {
            let (reads, read) = (reads.clone(), read.clone());
            tokio::spawn(async move { reads.read(1, read).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let waiter = {
            let (reads, read) = (reads.clone(), read.clone());
            tokio::spawn(async move { reads.read(1, read).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        gone.abort();
        assert_eq!(waiter.await.unwrap(), Some((1, 2)));
        assert_eq!((reads.keys_waiting(), reads.is_reading()), (0, false));
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_left_out_or_a_panicking_read_answers_none_and_the_next_read_works() {
        let reads: Arc<SharedReads<u32, u32>> = Arc::default();
        let left_out = reads
            .read(1, |_keys: Vec<u32>| async { HashMap::new() })
            .await;
        assert_eq!(left_out, None);
        let panicked = reads
            .read(2, |_keys: Vec<u32>| async {
                panic!("a bug in a read");
            })
            .await;
        assert_eq!(panicked, None);
        assert_eq!((reads.keys_waiting(), reads.is_reading()), (0, false));
        let fine = reads
            .read(3, |keys: Vec<u32>| async move {
                keys.into_iter().map(|k| (k, k * 10)).collect()
            })
            .await;
        assert_eq!(fine, Some(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_asks_for_at_most_max_keys_and_the_rest_follow() {
        let reads: Reads = Arc::default();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let read = counting(Arc::default(), seen.clone());
        let blocker = {
            let (reads, read) = (reads.clone(), read.clone());
            tokio::spawn(async move { reads.read(u32::MAX, read).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let many: Vec<_> = (0..(MAX_KEYS_PER_READ as u32 + 5))
            .map(|key| {
                let (reads, read) = (reads.clone(), read.clone());
                tokio::spawn(async move { reads.read(key, read).await })
            })
            .collect();
        blocker.await.unwrap();
        for waiter in many {
            assert!(waiter.await.unwrap().is_some());
        }
        let sizes: Vec<usize> = seen.lock().unwrap().iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1, MAX_KEYS_PER_READ, 5]);
    }
}
