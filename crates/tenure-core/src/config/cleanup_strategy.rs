//! How often and how soon a failed job cleanup is retried: Flink's `cleanup-strategy` keys.
//!
//! When a job reaches a globally terminal state its HA data is removed
//! ([`crate::job_cleanup`]); a failed attempt is retried as this strategy says. Exhausting the
//! retries is not fatal: the job result stays dirty and the next leader tries again.
//!
//! | key | default |
//! |---|---|
//! | `cleanup-strategy.type` (before Flink 1.19: `cleanup-strategy`) | `exponential-delay` |
//! | `cleanup-strategy.fixed-delay.delay` | 1 min |
//! | `cleanup-strategy.fixed-delay.attempts` | 2147483647 (no limit) |
//! | `cleanup-strategy.exponential-delay.initial-backoff` | 1 s |
//! | `cleanup-strategy.exponential-delay.max-backoff` | 1 h |
//! | `cleanup-strategy.exponential-delay.attempts` | 2147483647 (no limit) |
//!
//! The type is `fixed-delay` (`fixeddelay`), `exponential-delay` (`exponentialdelay`) or
//! `none` (`disable`, `off`: one attempt, no retry), in any case.
//!
//! ```
//! use std::time::Duration;
//! use tenure_core::config::{CleanupStrategy, Configuration};
//!
//! let conf = Configuration::from_pairs([
//!     ("cleanup-strategy.type", "fixed-delay"),
//!     ("cleanup-strategy.fixed-delay.delay", "10 s"),
//!     ("cleanup-strategy.fixed-delay.attempts", "3"),
//! ]);
//! let strategy = CleanupStrategy::from_configuration(&conf)?;
//! let waits: Vec<_> = (0..4).map(|retry| strategy.wait_before_retry(retry)).collect();
//! let ten = Some(Duration::from_secs(10));
//! assert_eq!(waits, [ten, ten, ten, None]);
//! # Ok::<(), tenure_core::config::ConfigError>(())
//! ```

use std::time::Duration;

use super::{ConfigError, Configuration};
use crate::retry::RetryPolicy;

/// `cleanup-strategy.type`: which strategy.
pub const TYPE_KEY: &str = "cleanup-strategy.type";
/// The key of the strategy's type before Flink 1.19, read when [`TYPE_KEY`] is not set.
pub const LEGACY_TYPE_KEY: &str = "cleanup-strategy";
/// `cleanup-strategy.fixed-delay.delay`.
pub const FIXED_DELAY_KEY: &str = "cleanup-strategy.fixed-delay.delay";
/// `cleanup-strategy.fixed-delay.attempts`.
pub const FIXED_ATTEMPTS_KEY: &str = "cleanup-strategy.fixed-delay.attempts";
/// `cleanup-strategy.exponential-delay.initial-backoff`.
pub const INITIAL_BACKOFF_KEY: &str = "cleanup-strategy.exponential-delay.initial-backoff";
/// `cleanup-strategy.exponential-delay.max-backoff`.
pub const MAX_BACKOFF_KEY: &str = "cleanup-strategy.exponential-delay.max-backoff";
/// `cleanup-strategy.exponential-delay.attempts`.
pub const EXPONENTIAL_ATTEMPTS_KEY: &str = "cleanup-strategy.exponential-delay.attempts";

/// Flink's default number of retries: `Integer.MAX_VALUE`, in effect no limit.
pub const UNLIMITED_ATTEMPTS: u32 = i32::MAX as u32;
/// Flink's default `cleanup-strategy.fixed-delay.delay`: 1 min.
pub const DEFAULT_FIXED_DELAY: Duration = Duration::from_secs(60);
/// Flink's default `cleanup-strategy.exponential-delay.initial-backoff`: 1 s.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Flink's default `cleanup-strategy.exponential-delay.max-backoff`: 1 h.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// How a failed job cleanup is retried (Flink's `cleanup-strategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CleanupStrategy {
    /// No retry: one attempt (`none`, `disable`, `off`).
    None,
    /// The same wait before every retry (`fixed-delay`).
    FixedDelay {
        /// The wait before each retry.
        delay: Duration,
        /// How many retries after the first attempt.
        attempts: u32,
    },
    /// A wait doubling from `initial_backoff` up to `max_backoff` (`exponential-delay`, the
    /// default).
    ExponentialDelay {
        /// The wait before the first retry.
        initial_backoff: Duration,
        /// The longest wait.
        max_backoff: Duration,
        /// How many retries after the first attempt.
        attempts: u32,
    },
}

impl Default for CleanupStrategy {
    /// Flink's default: exponential delay from 1 s up to 1 h, no limit on retries.
    fn default() -> Self {
        CleanupStrategy::ExponentialDelay {
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            attempts: UNLIMITED_ATTEMPTS,
        }
    }
}

/// What the type key accepts.
const TYPES: &str = "fixed-delay, exponential-delay or none (also fixeddelay, exponentialdelay, \
                     disable, off)";

impl CleanupStrategy {
    /// Reads the strategy from Flink's keys; a bad value is an error naming its key. Only the
    /// chosen strategy's keys are read.
    pub fn from_configuration(c: &Configuration) -> Result<Self, ConfigError> {
        let kind = c.lookup(TYPE_KEY, &[LEGACY_TYPE_KEY]);
        let name = kind.map(|(_, v)| v.trim().to_ascii_lowercase());
        match name.as_deref() {
            None | Some("exponential-delay" | "exponentialdelay") => {
                let initial_backoff = c.duration_or(
                    INITIAL_BACKOFF_KEY,
                    &[],
                    DEFAULT_INITIAL_BACKOFF,
                    Duration::ZERO,
                )?;
                let max_backoff =
                    c.duration_or(MAX_BACKOFF_KEY, &[], DEFAULT_MAX_BACKOFF, Duration::ZERO)?;
                if max_backoff < initial_backoff {
                    let value = c.get(MAX_BACKOFF_KEY).unwrap_or_default();
                    return Err(ConfigError::InvalidValue {
                        key: MAX_BACKOFF_KEY.to_owned(),
                        value: value.to_owned(),
                        expected: format!(
                            "a duration of at least {INITIAL_BACKOFF_KEY} ({})",
                            super::duration::format_duration(initial_backoff)
                        ),
                    });
                }
                Ok(CleanupStrategy::ExponentialDelay {
                    initial_backoff,
                    max_backoff,
                    attempts: c.int_or(EXPONENTIAL_ATTEMPTS_KEY, &[], UNLIMITED_ATTEMPTS)?,
                })
            }
            Some("fixed-delay" | "fixeddelay") => Ok(CleanupStrategy::FixedDelay {
                delay: c.duration_or(FIXED_DELAY_KEY, &[], DEFAULT_FIXED_DELAY, Duration::ZERO)?,
                attempts: c.int_or(FIXED_ATTEMPTS_KEY, &[], UNLIMITED_ATTEMPTS)?,
            }),
            Some("none" | "disable" | "off") => Ok(CleanupStrategy::None),
            Some(_) => {
                let (key, value) = kind.unwrap_or((TYPE_KEY, ""));
                Err(ConfigError::InvalidValue {
                    key: key.to_owned(),
                    value: value.to_owned(),
                    expected: TYPES.to_owned(),
                })
            }
        }
    }

    /// The Flink keys that say this strategy (what [`from_configuration`](Self::from_configuration)
    /// reads back as the same strategy).
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        use super::duration::format_duration as d;
        match *self {
            CleanupStrategy::None => vec![(TYPE_KEY, "none".to_owned())],
            CleanupStrategy::FixedDelay { delay, attempts } => vec![
                (TYPE_KEY, "fixed-delay".to_owned()),
                (FIXED_DELAY_KEY, d(delay)),
                (FIXED_ATTEMPTS_KEY, attempts.to_string()),
            ],
            CleanupStrategy::ExponentialDelay {
                initial_backoff,
                max_backoff,
                attempts,
            } => vec![
                (TYPE_KEY, "exponential-delay".to_owned()),
                (INITIAL_BACKOFF_KEY, d(initial_backoff)),
                (MAX_BACKOFF_KEY, d(max_backoff)),
                (EXPONENTIAL_ATTEMPTS_KEY, attempts.to_string()),
            ],
        }
    }

    /// How many retries follow a failed first attempt.
    pub fn max_retries(&self) -> u32 {
        match *self {
            CleanupStrategy::None => 0,
            CleanupStrategy::FixedDelay { attempts, .. }
            | CleanupStrategy::ExponentialDelay { attempts, .. } => attempts,
        }
    }

    /// The backoff between retries ([`crate::retry`]'s one implementation): a fixed delay is a
    /// policy whose base is its ceiling. `None` for [`CleanupStrategy::None`].
    pub fn retry_policy(&self) -> Option<RetryPolicy> {
        match *self {
            CleanupStrategy::None => None,
            CleanupStrategy::FixedDelay { delay, .. } => Some(RetryPolicy::new(delay, delay)),
            CleanupStrategy::ExponentialDelay {
                initial_backoff,
                max_backoff,
                ..
            } => Some(RetryPolicy::new(initial_backoff, max_backoff)),
        }
    }

    /// The wait before retry `retry` (0 for the first retry), or `None` once the retries are
    /// used up: the cleanup then gives up and the job result stays dirty.
    pub fn wait_before_retry(&self, retry: u32) -> Option<Duration> {
        if retry >= self.max_retries() {
            return None;
        }
        self.retry_policy().map(|p| p.wait(retry))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<CleanupStrategy, ConfigError> {
        CleanupStrategy::from_configuration(&Configuration::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn defaults_are_flinks() {
        let s = read(&[]).unwrap();
        assert_eq!(s, CleanupStrategy::default());
        assert_eq!(
            s,
            CleanupStrategy::ExponentialDelay {
                initial_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(3600),
                attempts: 2_147_483_647,
            }
        );
        assert_eq!(
            read(&[(TYPE_KEY, "fixed-delay")]).unwrap(),
            CleanupStrategy::FixedDelay {
                delay: Duration::from_secs(60),
                attempts: 2_147_483_647,
            }
        );
    }

    #[test]
    fn every_type_name_and_the_legacy_key_are_read() {
        for name in ["fixed-delay", "fixeddelay", "Fixed-Delay", " FIXEDDELAY "] {
            assert!(
                matches!(
                    read(&[(TYPE_KEY, name)]).unwrap(),
                    CleanupStrategy::FixedDelay { .. }
                ),
                "{name}"
            );
        }
        for name in ["exponential-delay", "exponentialdelay", "ExponentialDelay"] {
            assert!(matches!(
                read(&[(TYPE_KEY, name)]).unwrap(),
                CleanupStrategy::ExponentialDelay { .. }
            ));
        }
        for name in ["none", "disable", "off", "OFF"] {
            assert_eq!(read(&[(TYPE_KEY, name)]).unwrap(), CleanupStrategy::None);
        }
        // The old key is the fallback; the new one wins when both are set.
        assert_eq!(
            read(&[(LEGACY_TYPE_KEY, "none")]).unwrap(),
            CleanupStrategy::None
        );
        assert_eq!(
            read(&[(LEGACY_TYPE_KEY, "none"), (TYPE_KEY, "fixed-delay")])
                .unwrap()
                .max_retries(),
            UNLIMITED_ATTEMPTS
        );
    }

    #[test]
    fn the_chosen_strategys_keys_are_read() {
        assert_eq!(
            read(&[
                (TYPE_KEY, "fixed-delay"),
                (FIXED_DELAY_KEY, "250 ms"),
                (FIXED_ATTEMPTS_KEY, "4"),
                // Another strategy's keys are not read, even when bad.
                (INITIAL_BACKOFF_KEY, "soon"),
            ])
            .unwrap(),
            CleanupStrategy::FixedDelay {
                delay: Duration::from_millis(250),
                attempts: 4,
            }
        );
        assert_eq!(
            read(&[
                (INITIAL_BACKOFF_KEY, "2 s"),
                (MAX_BACKOFF_KEY, "1 min"),
                (EXPONENTIAL_ATTEMPTS_KEY, "0"),
            ])
            .unwrap(),
            CleanupStrategy::ExponentialDelay {
                initial_backoff: Duration::from_secs(2),
                max_backoff: Duration::from_secs(60),
                attempts: 0,
            }
        );
    }

    #[test]
    fn errors_name_the_key_and_the_value() {
        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[(TYPE_KEY, "failure-rate")], TYPE_KEY),
            (&[(LEGACY_TYPE_KEY, "sometimes")], LEGACY_TYPE_KEY),
            (
                &[(TYPE_KEY, "fixed-delay"), (FIXED_DELAY_KEY, "later")],
                FIXED_DELAY_KEY,
            ),
            (
                &[(TYPE_KEY, "fixed-delay"), (FIXED_ATTEMPTS_KEY, "-1")],
                FIXED_ATTEMPTS_KEY,
            ),
            (
                &[(EXPONENTIAL_ATTEMPTS_KEY, "many")],
                EXPONENTIAL_ATTEMPTS_KEY,
            ),
            (
                &[(INITIAL_BACKOFF_KEY, "10 s"), (MAX_BACKOFF_KEY, "1 s")],
                MAX_BACKOFF_KEY,
            ),
        ];
        for (pairs, key) in cases {
            match read(pairs) {
                Err(ConfigError::InvalidValue { key: k, .. }) => assert_eq!(k, key, "{pairs:?}"),
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
        let msg = read(&[(TYPE_KEY, "failure-rate")]).unwrap_err().to_string();
        assert!(
            msg.contains("failure-rate") && msg.contains("fixed-delay"),
            "{msg}"
        );
    }

    #[test]
    fn the_retry_schedule_follows_the_strategy() {
        let s = |ms| Duration::from_millis(ms);
        let exp = CleanupStrategy::ExponentialDelay {
            initial_backoff: s(100),
            max_backoff: s(500),
            attempts: 5,
        };
        let waits: Vec<_> = (0..6).map(|r| exp.wait_before_retry(r)).collect();
        assert_eq!(
            waits,
            [
                Some(s(100)),
                Some(s(200)),
                Some(s(400)),
                Some(s(500)),
                Some(s(500)),
                None
            ]
        );
        assert_eq!(CleanupStrategy::None.wait_before_retry(0), None);
        let fixed = CleanupStrategy::FixedDelay {
            delay: s(0),
            attempts: 1,
        };
        assert_eq!(fixed.wait_before_retry(0), Some(Duration::ZERO));
        assert_eq!(fixed.wait_before_retry(1), None);
        let default = CleanupStrategy::default();
        assert_eq!(default.wait_before_retry(0), Some(Duration::from_secs(1)));
        assert_eq!(
            default.wait_before_retry(1_000_000),
            Some(Duration::from_secs(3600))
        );
    }

    #[test]
    fn the_typed_builder_and_ha_config_carry_the_strategy() {
        let strategy = CleanupStrategy::FixedDelay {
            delay: Duration::from_secs(5),
            attempts: 2,
        };
        let config = super::super::HaConfig::builder()
            .cleanup_strategy(strategy)
            .build()
            .unwrap();
        assert_eq!(config.cleanup_strategy, strategy);
        assert_eq!(
            super::super::HaConfig::embedded().cleanup_strategy,
            CleanupStrategy::default()
        );
        let err = super::super::HaConfig::builder()
            .set(TYPE_KEY, "sometimes")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains(TYPE_KEY), "{err}");
    }

    proptest! {
        #[test]
        fn pairs_read_back_as_the_same_strategy(
            kind in 0u8..3,
            a in 0u64..10_000_000,
            b in 0u64..10_000_000,
            attempts in any::<u32>(),
        ) {
            let ms = Duration::from_millis;
            let strategy = match kind {
                0 => CleanupStrategy::None,
                1 => CleanupStrategy::FixedDelay { delay: ms(a), attempts },
                _ => CleanupStrategy::ExponentialDelay {
                    initial_backoff: ms(a.min(b)),
                    max_backoff: ms(a.max(b)),
                    attempts,
                },
            };
            let conf = Configuration::from_pairs(strategy.to_pairs());
            prop_assert_eq!(CleanupStrategy::from_configuration(&conf).unwrap(), strategy);
        }

        #[test]
        fn reading_never_panics(kind in ".{0,20}", value in ".{0,20}") {
            let _ = read(&[(TYPE_KEY, &kind), (FIXED_DELAY_KEY, &value), (MAX_BACKOFF_KEY, &value)]);
        }
    }
}
