//! One retry policy for every backend: exponential backoff between a floor and a ceiling.
//!
//! The wait before retry `n` (counting from 0) is `base * 2^n`, never less than
//! [`RetryPolicy::MIN_WAIT`] (so a zero base cannot spin) and never more than the policy's
//! `max_wait`. The bounds are deterministic (no jitter), so a test with paused time can predict
//! every wait. ZooKeeper's policy is Curator's `ExponentialBackoffRetry` as Flink configures it:
//! `high-availability.zookeeper.client.retry-wait` as the base and
//! `high-availability.zookeeper.client.max-retry-wait` as the ceiling.
//!
//! ```
//! use std::time::Duration;
//! use tenure_core::retry::RetryPolicy;
//!
//! let policy = RetryPolicy::new(Duration::from_millis(100), Duration::from_secs(1));
//! let mut backoff = policy.backoff();
//! let waits: Vec<_> = (0..6).map(|_| backoff.next_wait()).collect();
//! assert_eq!(waits, [100, 200, 400, 800, 1000, 1000].map(Duration::from_millis));
//! assert_eq!(backoff.attempts(), 6);
//! ```

use std::time::Duration;

use crate::config::ZooKeeperConfig;

/// Flink's default of `high-availability.zookeeper.client.max-retry-wait`: 60 s.
pub const DEFAULT_MAX_RETRY_WAIT: Duration = Duration::from_secs(60);

/// Exponential backoff: `base * 2^attempt`, at least [`RetryPolicy::MIN_WAIT`] (or `max_wait`
/// if that is smaller), at most `max_wait`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait before the first retry.
    pub base: Duration,
    /// The longest wait between two attempts.
    pub max_wait: Duration,
}

impl RetryPolicy {
    /// The shortest wait, whatever the base: retries never spin.
    pub const MIN_WAIT: Duration = Duration::from_millis(50);

    /// A policy starting at `base` and doubling up to `max_wait`.
    pub const fn new(base: Duration, max_wait: Duration) -> Self {
        Self { base, max_wait }
    }

    /// The ZooKeeper client's policy: `high-availability.zookeeper.client.retry-wait` doubling
    /// up to `high-availability.zookeeper.client.max-retry-wait`.
    pub fn from_zookeeper(config: &ZooKeeperConfig) -> Self {
        Self::new(config.retry_wait, config.max_retry_wait)
    }

    /// The wait before retry `attempt` (0 for the first retry). Never panics, never overflows.
    pub fn wait(&self, attempt: u32) -> Duration {
        let grown = 1u32
            .checked_shl(attempt)
            .map_or(self.max_wait, |factor| self.base.saturating_mul(factor));
        grown.max(Self::MIN_WAIT).min(self.max_wait)
    }

    /// A fresh attempt counter following this policy.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            policy: *self,
            attempts: 0,
        }
    }
}

/// Counts the retries of one operation and hands out the policy's waits in turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    policy: RetryPolicy,
    attempts: u32,
}

impl Backoff {
    /// The wait before the next retry; counts the retry.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.policy.wait(self.attempts);
        self.attempts = self.attempts.saturating_add(1);
        wait
    }

    /// How many waits were handed out since the start or the last [`reset`](Self::reset).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Starts over at the base wait (after a success).
    pub fn reset(&mut self) {
        self.attempts = 0;
    }

    /// The policy followed.
    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn waits_double_from_the_base_up_to_the_ceiling() {
        let p = RetryPolicy::new(MS(100), Duration::from_secs(30));
        assert_eq!(p.wait(0), MS(100));
        assert_eq!(p.wait(3), MS(800));
        assert_eq!(p.wait(40), Duration::from_secs(30));
        assert_eq!(p.wait(u32::MAX), Duration::from_secs(30));
        assert_eq!(RetryPolicy::new(Duration::ZERO, MS(500)).wait(0), MS(50));
        // A ceiling below the floor wins.
        assert_eq!(RetryPolicy::new(Duration::ZERO, MS(10)).wait(0), MS(10));
    }

    #[test]
    fn the_counter_counts_and_resets() {
        let mut b = RetryPolicy::new(MS(50), MS(1000)).backoff();
        assert_eq!(b.next_wait(), MS(50));
        assert_eq!(b.next_wait(), MS(100));
        assert_eq!(b.attempts(), 2);
        b.reset();
        assert_eq!((b.attempts(), b.next_wait()), (0, MS(50)));
    }

    #[test]
    fn zookeeper_policy_reads_flinks_keys() {
        let z = ZooKeeperConfig::default();
        let p = RetryPolicy::from_zookeeper(&z);
        assert_eq!(
            p,
            RetryPolicy::new(Duration::from_secs(5), DEFAULT_MAX_RETRY_WAIT)
        );
        assert_eq!(p.wait(10), DEFAULT_MAX_RETRY_WAIT);
    }

    proptest! {
        #[test]
        fn waits_are_bounded_and_never_shrink(
            base in 0u64..100_000,
            max in 1u64..200_000,
            attempt in any::<u32>(),
        ) {
            let p = RetryPolicy::new(MS(base), MS(max));
            let w = p.wait(attempt);
            prop_assert!(w <= MS(max));
            prop_assert!(w >= RetryPolicy::MIN_WAIT.min(MS(max)));
            prop_assert!(p.wait(attempt.saturating_add(1)) >= w);
        }
    }
}
