//! Lease arithmetic of the leader-election record, all on the core's [`Clock`].
//!
//! Two clocks are never compared with each other where it matters:
//!
//! - A contender decides that a holder's lease has expired by its **own observation**: the
//!   moment it first saw the current record (holder, renew time, transitions) plus the lease
//!   duration (client-go's `observedTime` rule). A contender whose clock runs ahead or behind
//!   the holder's therefore waits the full lease after the holder's last renewal it saw.
//! - Only when the record's own renew time is older than lease duration **plus a skew
//!   allowance** by the contender's clock is the lease taken as expired without waiting
//!   (a contender starting long after the holder died). Skew below the allowance is harmless.
//! - The holder steps down by its own clock: when it cannot confirm a renewal within the renew
//!   deadline after the start of its last successful renewal request. Since a renewal is
//!   observed no earlier than it was sent and the renew deadline is at most the lease duration,
//!   the holder stops before any contender may take over.
//!
//! [`Clock`]: tenure_core::clock::Clock

use std::time::Duration;

use crate::codec::LeaderRecord;

/// Milliseconds of a duration, saturating.
pub fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// When this process first saw the current version of a lease record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    holder: String,
    renew_time_ms: u64,
    transitions: i64,
    /// The local time (ms) the record was first seen.
    pub observed_at_ms: u64,
}

impl Observation {
    /// Notes `record` seen at `now`: the observation time only moves when the record changed.
    pub fn observe(prev: Option<Observation>, record: &LeaderRecord, now_ms: u64) -> Observation {
        match prev {
            Some(p)
                if p.holder == record.holder_identity
                    && p.renew_time_ms == record.renew_time_ms
                    && p.transitions == record.leader_transitions =>
            {
                p
            }
            _ => Observation {
                holder: record.holder_identity.clone(),
                renew_time_ms: record.renew_time_ms,
                transitions: record.leader_transitions,
                observed_at_ms: now_ms,
            },
        }
    }
}

/// Whether a contender may take the lease described by `record` (first seen as `obs`) at local
/// time `now`: it is released (empty holder), or its lease ran out by local observation, or
/// its renew time is older than lease + `skew_allowance` by the local clock.
/// `fallback_lease` is used when the record carries no lease duration.
pub fn is_free(
    record: &LeaderRecord,
    obs: &Observation,
    now_ms: u64,
    fallback_lease: Duration,
    skew_allowance: Duration,
) -> bool {
    if record.holder_identity.is_empty() {
        return true;
    }
    let lease = if record.lease_duration.is_zero() {
        fallback_lease
    } else {
        record.lease_duration
    };
    let observed_expiry = obs.observed_at_ms.saturating_add(ms(lease));
    let recorded_expiry = record
        .renew_time_ms
        .saturating_add(ms(lease))
        .saturating_add(ms(skew_allowance));
    now_ms >= observed_expiry || now_ms >= recorded_expiry
}

/// Whether the holder must step down at `now`: its last confirmed renewal request started at
/// `last_renew_start_ms` and `renew_deadline` has passed since.
pub fn must_step_down(last_renew_start_ms: u64, now_ms: u64, renew_deadline: Duration) -> bool {
    now_ms >= last_renew_start_ms.saturating_add(ms(renew_deadline))
}

/// The record a contender writes to acquire the lease held (or last held) by `old`.
pub fn acquired(
    old: Option<&LeaderRecord>,
    identity: &str,
    lease: Duration,
    now_ms: u64,
) -> LeaderRecord {
    let transitions = match old {
        None => 0,
        Some(r) if r.holder_identity == identity => r.leader_transitions,
        Some(r) => r.leader_transitions.saturating_add(1),
    };
    LeaderRecord {
        holder_identity: identity.to_owned(),
        lease_duration: lease,
        acquire_time_ms: now_ms,
        renew_time_ms: now_ms,
        leader_transitions: transitions,
    }
}

/// The record the holder writes to renew.
pub fn renewed(current: &LeaderRecord, now_ms: u64) -> LeaderRecord {
    LeaderRecord {
        renew_time_ms: now_ms,
        ..current.clone()
    }
}

/// The record the holder writes to release the lease (fabric8: empty holder).
pub fn released(current: &LeaderRecord, now_ms: u64) -> LeaderRecord {
    LeaderRecord {
        holder_identity: String::new(),
        renew_time_ms: now_ms,
        ..current.clone()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tenure_core::clock::{Clock, ManualClock};

    use super::*;

    const LEASE: Duration = Duration::from_secs(15);
    const DEADLINE: Duration = Duration::from_secs(15);
    const SKEW: Duration = Duration::from_secs(15);

    fn record(holder: &str, renew: u64) -> LeaderRecord {
        LeaderRecord {
            holder_identity: holder.into(),
            lease_duration: LEASE,
            acquire_time_ms: renew,
            renew_time_ms: renew,
            leader_transitions: 1,
        }
    }

    #[test]
    fn a_live_holder_keeps_the_lease_and_a_dead_one_loses_it() {
        let contender = ManualClock::new(1_000_000);
        let r = record("a", 1_000_000);
        let obs = Observation::observe(None, &r, contender.now_millis());
        assert!(!is_free(&r, &obs, contender.now_millis(), LEASE, SKEW));
        contender.advance(Duration::from_secs(14));
        assert!(!is_free(&r, &obs, contender.now_millis(), LEASE, SKEW));
        // The holder renews: a new observation restarts the wait.
        let r2 = renewed(&r, 1_014_000);
        let obs = Observation::observe(Some(obs), &r2, contender.now_millis());
        contender.advance(Duration::from_secs(14));
        assert!(!is_free(&r2, &obs, contender.now_millis(), LEASE, SKEW));
        // No renewal for a full lease after the last one seen: free.
        contender.advance(Duration::from_secs(1));
        assert!(is_free(&r2, &obs, contender.now_millis(), LEASE, SKEW));
        // The same record seen again does not move the observation time.
        let again = Observation::observe(Some(obs.clone()), &r2, contender.now_millis());
        assert_eq!(again, obs);
    }

    #[test]
    fn a_released_record_is_free_at_once() {
        let r = released(&record("a", 5), 6);
        let obs = Observation::observe(None, &r, 6);
        assert!(is_free(&r, &obs, 6, LEASE, SKEW));
    }

    #[test]
    fn a_contender_clock_far_ahead_still_waits_for_its_own_observation() {
        // The holder's clock reads 1_000_000; the contender's runs 20 s ahead (more than the
        // lease, less than lease + allowance).
        let holder = ManualClock::new(1_000_000);
        let contender = ManualClock::new(1_020_000);
        let r = record("a", holder.now_millis());
        let obs = Observation::observe(None, &r, contender.now_millis());
        assert!(!is_free(&r, &obs, contender.now_millis(), LEASE, SKEW));
        holder.advance(Duration::from_secs(5));
        contender.advance(Duration::from_secs(5));
        let r = renewed(&r, holder.now_millis());
        let obs = Observation::observe(Some(obs), &r, contender.now_millis());
        assert!(!is_free(&r, &obs, contender.now_millis(), LEASE, SKEW));
    }

    #[test]
    fn a_contender_clock_behind_never_takes_over_early() {
        let contender = ManualClock::new(1_000_000 - 60_000);
        let r = record("a", 1_000_000);
        let obs = Observation::observe(None, &r, contender.now_millis());
        contender.advance(Duration::from_secs(14));
        assert!(!is_free(&r, &obs, contender.now_millis(), LEASE, SKEW));
        contender.advance(Duration::from_secs(1));
        assert!(is_free(&r, &obs, contender.now_millis(), LEASE, SKEW));
    }

    #[test]
    fn a_long_dead_holder_is_free_for_a_new_process_without_waiting() {
        let contender = ManualClock::new(10_000_000);
        let r = record("dead", 1_000_000);
        let obs = Observation::observe(None, &r, contender.now_millis());
        assert!(is_free(&r, &obs, contender.now_millis(), LEASE, SKEW));
    }

    #[test]
    fn the_holder_steps_down_before_anyone_may_take_over() {
        // Holder and contender clocks differ by 7 s; the renewal request started at holder time
        // t0 and reached the server (and the contender) 2 s later.
        let holder = ManualClock::new(2_000_000);
        let contender = ManualClock::new(2_007_000);
        let t0 = holder.now_millis();
        holder.advance(Duration::from_secs(2));
        contender.advance(Duration::from_secs(2));
        let r = record("a", t0);
        let obs = Observation::observe(None, &r, contender.now_millis());
        loop {
            holder.advance(Duration::from_millis(100));
            contender.advance(Duration::from_millis(100));
            let down = must_step_down(t0, holder.now_millis(), DEADLINE);
            let free = is_free(&r, &obs, contender.now_millis(), LEASE, SKEW);
            assert!(
                !free || down,
                "contender took over while the holder still led"
            );
            if free {
                break;
            }
        }
    }

    #[test]
    fn transitions_count_holder_changes() {
        let a = acquired(None, "a", LEASE, 1);
        assert_eq!(a.leader_transitions, 0);
        let b = acquired(Some(&a), "b", LEASE, 2);
        assert_eq!(b.leader_transitions, 1);
        let rel = released(&b, 3);
        let c = acquired(Some(&rel), "c", LEASE, 4);
        assert_eq!(c.leader_transitions, 2);
        assert_eq!(renewed(&c, 9).renew_time_ms, 9);
        assert_eq!(renewed(&c, 9).acquire_time_ms, 4);
    }
}
