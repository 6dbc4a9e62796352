//! Failed sign-ins counted per key (a user, a source address) within a
//! window, bounded in memory. The token endpoint and the console share the
//! rule: after [`MAX_FAILURES`] failures in [`FAILURE_WINDOW`], a key is
//! refused until its failures age out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed sign-ins allowed per user or source address in [`FAILURE_WINDOW`].
pub const MAX_FAILURES: usize = 10;
/// The window over which failures are counted.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(300);
/// Keys remembered at most; past it, aged-out keys go, then all.
const MAX_KEYS: usize = 100_000;

/// Counts failed sign-ins.
#[derive(Default)]
pub struct SignInThrottle {
    by_key: Mutex<HashMap<String, Vec<Instant>>>,
}

impl SignInThrottle {
    /// Whether any of `keys` has used up its failures.
    pub fn limited(&self, keys: &[String]) -> bool {
        let now = Instant::now();
        let mut map = self.by_key.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter().any(|key| match map.get_mut(key) {
            Some(times) => {
                times.retain(|t| now.duration_since(*t) < FAILURE_WINDOW);
                times.len() >= MAX_FAILURES
            }
            None => false,
        })
    }

    /// Counts a failure against each of `keys`.
    pub fn failed(&self, keys: Vec<String>) {
        let now = Instant::now();
        let mut map = self.by_key.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_KEYS {
            map.retain(|_, times| {
                times
                    .iter()
                    .any(|t| now.duration_since(*t) < FAILURE_WINDOW)
            });
            if map.len() >= MAX_KEYS {
                map.clear();
            }
        }
        for key in keys {
            map.entry(key).or_default().push(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_limited_after_its_failures_and_others_are_not() {
        let t = SignInThrottle::default();
        let keys = vec!["user:alice".to_owned(), "ip:10.0.0.1".to_owned()];
        for _ in 0..MAX_FAILURES - 1 {
            t.failed(keys.clone());
        }
        assert!(!t.limited(&keys));
        t.failed(vec!["user:alice".to_owned()]);
        assert!(t.limited(&["user:alice".to_owned()]));
        assert!(!t.limited(&["ip:10.0.0.1".to_owned()]));
        assert!(t.limited(&keys), "any limited key limits the attempt");
        assert!(!t.limited(&["user:bob".to_owned()]));
    }
}
