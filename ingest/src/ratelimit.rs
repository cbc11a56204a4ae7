//! Rate-limited warnings: bad input from outside is logged at most once
//! per interval per call site, with how many were left unsaid.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often one call site may log.
const EVERY: Duration = Duration::from_secs(10);

/// One call site's limiter; use as a `static`.
pub(crate) struct LogLimiter {
    next: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl LogLimiter {
    /// A limiter that lets the first event through.
    pub(crate) const fn new() -> Self {
        Self {
            next: Mutex::new(None),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when this event may be logged, `n` being how many were
    /// suppressed since the last one; `None` when it must stay quiet.
    pub(crate) fn check(&self) -> Option<u64> {
        let now = Instant::now();
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        if next.is_some_and(|t| now < t) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *next = Some(now + EVERY);
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_one_through_per_interval_and_counts_the_rest() {
        let l = LogLimiter::new();
        assert_eq!(l.check(), Some(0));
        assert_eq!(l.check(), None);
        assert_eq!(l.check(), None);
        *l.next.lock().expect("lock") = Some(Instant::now());
        assert_eq!(l.check(), Some(2));
    }
}
