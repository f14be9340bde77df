//! Per-user caps on concurrent work (event streams, uploads), counted in this gateway process.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

/// Up to `max` slots per user; a slot is given back when its [`Slot`] is dropped.
#[derive(Debug)]
pub struct PerUser {
    max: usize,
    held: Mutex<HashMap<String, usize>>,
}

impl PerUser {
    /// `max` slots for each user.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// A slot for `user`, or `None` when they already hold `max`.
    pub fn try_acquire(self: &Arc<Self>, user: &str) -> Option<Slot> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let count = held.entry(user.to_owned()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot {
            owner: Arc::clone(self),
            user: user.to_owned(),
        })
    }

    /// How many slots `user` holds.
    pub fn held_by(&self, user: &str) -> usize {
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.get(user).copied().unwrap_or(0)
    }
}

/// One held slot; dropping it frees it.
#[derive(Debug)]
pub struct Slot {
    owner: Arc<PerUser>,
    user: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self
            .owner
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                // Forget users with nothing held, so the map does not grow with every user ever seen.
                held.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_user_and_given_back() {
        let slots = PerUser::new(2);
        let a1 = slots.try_acquire("a").unwrap();
        let _a2 = slots.try_acquire("a").unwrap();
        assert!(slots.try_acquire("a").is_none());
        let _b = slots.try_acquire("b").unwrap();
        drop(a1);
        assert_eq!(slots.held_by("a"), 1);
        assert!(slots.try_acquire("a").is_some());
        drop(_b);
        assert_eq!(slots.held_by("b"), 0);
    }
}
