//! The Kubernetes latch recipe driven by scripted inputs and a manual clock: no API server, no
//! IO, no sleeps.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use tenure_core::clock::{Clock, ManualClock};
use tenure_core::connection::ConnectionState;
use tenure_core::driver::{LatchRecipe, RecipeInput, RecipeOutput, SessionView};
use tenure_core::kv::FencingToken;

use super::{Op, Recipe, Reply, Request, Response};
use crate::api::ApiError;
use crate::cm;
use crate::codec::LeaderRecord;
use crate::latch_io::Active;
use crate::names::{LEADER_ANNOTATION, Names};
use crate::settings::KubernetesSettings;

const LOCK: &str = "tenure-test-cluster-config-map";
const LEASE: Duration = Duration::from_secs(15);
const DEADLINE: Duration = Duration::from_secs(10);
const RETRY: Duration = Duration::from_secs(2);
const START: u64 = 1_700_000_000_000;
const MS: fn(u64) -> Duration = Duration::from_millis;

/// What a recipe decided, in a form tests compare.
#[derive(Debug, PartialEq)]
enum Ev {
    Get,
    Create(LeaderRecord),
    Replace(LeaderRecord),
    WaitChange,
    TermGranted {
        epoch: i64,
        identity: String,
        started: u64,
    },
    TermRenewed {
        epoch: i64,
        started: u64,
    },
    TermOver {
        epoch: i64,
    },
    Sweep(FencingToken),
    Release(String),
    Granted(FencingToken),
    Revoked,
    Left,
    Done,
    WakeAfter(Duration),
}

struct Harness {
    recipe: Recipe,
    clock: ManualClock,
    /// The seq of the last request whose reply is awaited (notes have seq 0).
    awaited: u64,
    /// The ConfigMap of the last replace, as it would be stored.
    written: Option<Box<ConfigMap>>,
    rv: u64,
}

fn record(holder: &str, at: u64, transitions: i64) -> LeaderRecord {
    LeaderRecord {
        holder_identity: holder.into(),
        lease_duration: LEASE,
        acquire_time_ms: at,
        renew_time_ms: at,
        leader_transitions: transitions,
    }
}

fn token(epoch: i64) -> FencingToken {
    FencingToken::new(LOCK, epoch)
}

impl Harness {
    fn new() -> Self {
        let clock = ManualClock::new(START);
        let mut settings =
            KubernetesSettings::new("default", "tenure-test").with_timing(LEASE, DEADLINE, RETRY);
        settings.clock = Arc::new(clock.clone());
        Self {
            recipe: Recipe::new(LOCK.into(), &settings, Active::detached()),
            clock,
            awaited: 0,
            written: None,
            rv: 1,
        }
    }

    fn now(&self) -> u64 {
        self.clock.now_millis()
    }

    fn identity(&self) -> String {
        self.recipe.identity.clone()
    }

    fn feed(&mut self, input: RecipeInput<Reply>) -> Vec<Ev> {
        let mut out = Vec::new();
        self.recipe.handle(input, &mut out);
        out.into_iter()
            .map(|o| match o {
                RecipeOutput::Request(Request { seq, op }) => {
                    if seq != 0 {
                        self.awaited = seq;
                    }
                    match op {
                        Op::Get { lock } => {
                            assert_eq!(&*lock, LOCK);
                            Ev::Get
                        }
                        Op::Create { lock, record } => {
                            assert_eq!(&*lock, LOCK);
                            Ev::Create(record)
                        }
                        Op::Replace { lock, cm } => {
                            assert_eq!(&*lock, LOCK);
                            let r = cm::leader_record(&cm).unwrap().unwrap();
                            self.written = Some(cm);
                            Ev::Replace(r)
                        }
                        Op::WaitChange { lock } => {
                            assert_eq!(&*lock, LOCK);
                            Ev::WaitChange
                        }
                        Op::TermGranted {
                            lock,
                            epoch,
                            identity,
                            started,
                        } => {
                            assert_eq!(&*lock, LOCK);
                            assert_eq!(seq, 0, "bookkeeping is not awaited");
                            Ev::TermGranted {
                                epoch,
                                identity,
                                started,
                            }
                        }
                        Op::TermRenewed {
                            lock,
                            epoch,
                            started,
                        } => {
                            assert_eq!(&*lock, LOCK);
                            assert_eq!(seq, 0, "bookkeeping is not awaited");
                            Ev::TermRenewed { epoch, started }
                        }
                        Op::TermOver { lock, epoch } => {
                            assert_eq!(&*lock, LOCK);
                            assert_eq!(seq, 0, "bookkeeping is not awaited");
                            Ev::TermOver { epoch }
                        }
                        Op::Sweep { token } => Ev::Sweep(token),
                        Op::Release { lock, identity } => {
                            assert_eq!(&*lock, LOCK);
                            Ev::Release(identity)
                        }
                    }
                }
                RecipeOutput::Granted(t) => Ev::Granted(t),
                RecipeOutput::Revoked => Ev::Revoked,
                RecipeOutput::Failed(e) => panic!("the Kubernetes latch never fails: {e}"),
                RecipeOutput::Left => Ev::Left,
                RecipeOutput::Done => Ev::Done,
                RecipeOutput::WakeAfter(d) => Ev::WakeAfter(d),
            })
            .collect()
    }

    fn reply(&mut self, response: Response) -> Vec<Ev> {
        let seq = self.awaited;
        self.feed(RecipeInput::Response(Reply { seq, response }))
    }

    fn got(&mut self, cm: Option<ConfigMap>) -> Vec<Ev> {
        self.reply(Response::Got {
            cm: Ok(cm.map(Box::new)),
            cleaned: false,
        })
    }

    /// The lock ConfigMap holding `record`.
    fn cm(&mut self, record: &LeaderRecord) -> ConfigMap {
        let mut c = cm::new_cm(&Names::new("tenure-test"), LOCK);
        self.rv += 1;
        c.metadata.resource_version = Some(self.rv.to_string());
        cm::set_leader_record(&mut c, record);
        c
    }

    /// The ConfigMap the last replace wrote, as the server now returns it.
    fn stored(&mut self) -> ConfigMap {
        let mut c = *self.written.clone().unwrap();
        self.rv += 1;
        c.metadata.resource_version = Some(self.rv.to_string());
        c
    }

    fn wake(&mut self) -> Vec<Ev> {
        self.feed(RecipeInput::Wake)
    }

    /// Joined and acquired a lock that did not exist: leading with term 0.
    fn leader() -> Self {
        let mut h = Self::new();
        assert_eq!(h.feed(RecipeInput::Join), vec![Ev::Get]);
        let at = h.now();
        let me = h.identity();
        assert_eq!(h.got(None), vec![Ev::Create(record(&me, at, 0))]);
        h.written = Some(Box::new(h.cm(&record(&me, at, 0))));
        assert_eq!(
            h.reply(Response::Written(Ok(()))),
            vec![
                Ev::TermGranted {
                    epoch: 0,
                    identity: me.clone(),
                    started: at
                },
                Ev::Sweep(token(0)),
            ]
        );
        assert_eq!(
            h.reply(Response::Swept),
            vec![Ev::Granted(token(0)), Ev::WakeAfter(RETRY)]
        );
        h
    }
}

#[test]
fn first_acquisition_creates_the_lock_sweeps_then_grants_term_zero() {
    // All of it in `Harness::leader`: no ConfigMap -> Create with this identity ->
    // TermGranted, Sweep -> Granted(lock, 0) and the next round after the retry period, without
    // waiting for changes (a leader renews on its timer).
    let h = Harness::leader();
    assert!(!h.identity().is_empty());
}

#[test]
fn renewal_within_the_deadline_replaces_the_record_and_grants_nothing_new() {
    let mut h = Harness::leader();
    let me = h.identity();
    let acquired = h.now();
    for round in 1..=3u64 {
        h.clock.advance(RETRY);
        // Each round of a leader also arms a wake-up at its renew deadline.
        assert_eq!(h.wake(), vec![Ev::Get, Ev::WakeAfter(DEADLINE - RETRY)]);
        let c = h.stored();
        let evs = h.got(Some(c));
        let renewed = LeaderRecord {
            renew_time_ms: h.now(),
            ..record(&me, acquired, 0)
        };
        assert_eq!(evs, vec![Ev::Replace(renewed)], "round {round}");
        assert_eq!(
            h.reply(Response::Written(Ok(()))),
            vec![
                Ev::TermRenewed {
                    epoch: 0,
                    started: h.now()
                },
                Ev::WakeAfter(RETRY)
            ]
        );
    }
    assert_eq!(h.identity(), me);
}

#[test]
fn no_confirmed_renewal_within_the_deadline_steps_down() {
    let mut h = Harness::leader();
    let me = h.identity();
    let last = h.now();
    // Renewals fail (server errors); the rounds never wait past the renew deadline.
    let mut waited = Duration::ZERO;
    loop {
        h.clock.advance(RETRY);
        waited += RETRY;
        let evs = h.wake();
        if waited >= DEADLINE {
            assert_eq!(
                evs,
                vec![Ev::TermOver { epoch: 0 }, Ev::Revoked, Ev::Get],
                "at the deadline"
            );
            break;
        }
        let until = MS(last + 10_000 - h.now());
        assert_eq!(evs, vec![Ev::Get, Ev::WakeAfter(until)]);
        let c = h.stored();
        assert!(matches!(h.got(Some(c))[..], [Ev::Replace(_)]));
        let evs = h.reply(Response::Written(Err(ApiError::Transient("503".into()))));
        assert_eq!(evs, vec![Ev::WakeAfter(RETRY.min(until))]);
    }
    // A new identity for the next campaign: the old record is someone else's now, and it is
    // fresh, so this process waits.
    assert_ne!(h.identity(), me);
    let c = h.cm(&record(&me, last, 0));
    assert_eq!(h.got(Some(c)), vec![Ev::WaitChange, Ev::WakeAfter(RETRY)]);
}

#[test]
fn the_deadline_passing_while_a_renewal_hangs_steps_down_at_the_deadline() {
    let mut h = Harness::leader();
    let last = h.now();
    h.clock.advance(DEADLINE - MS(500));
    // The round starts 500 ms before the deadline; its read does not answer in time.
    let evs = h.wake();
    assert_eq!(evs, vec![Ev::Get, Ev::WakeAfter(MS(500))]);
    let hung = h.awaited;
    h.clock.set(last + 10_000);
    assert_eq!(
        h.wake(),
        vec![Ev::TermOver { epoch: 0 }, Ev::Revoked, Ev::Get],
        "stepped down at the deadline with the read in flight; a new round starts"
    );
    // The hung read answers late: stale.
    let c = h.stored();
    let late = Reply {
        seq: hung,
        response: Response::Got {
            cm: Ok(Some(Box::new(c.clone()))),
            cleaned: false,
        },
    };
    assert_eq!(h.feed(RecipeInput::Response(late)), vec![]);
    // The new round sees the old term's record as someone else's, fresh: it waits.
    assert_eq!(h.got(Some(c)), vec![Ev::WaitChange, Ev::WakeAfter(RETRY)]);
}

#[test]
fn a_renewal_confirmed_after_the_deadline_is_not_a_grant() {
    let mut h = Harness::leader();
    let last = h.now();
    h.clock.advance(DEADLINE - MS(500));
    h.wake();
    let c = h.stored();
    assert!(matches!(h.got(Some(c))[..], [Ev::Replace(_)]));
    let replace = h.awaited;
    h.clock.set(last + 10_000);
    assert_eq!(
        h.wake(),
        vec![Ev::TermOver { epoch: 0 }, Ev::Revoked, Ev::Get]
    );
    // The replace lands late: no grant comes of it.
    let late = Reply {
        seq: replace,
        response: Response::Written(Ok(())),
    };
    assert_eq!(h.feed(RecipeInput::Response(late)), vec![]);
}

#[test]
fn a_superfluous_deadline_wake_up_while_renewed_changes_nothing_but_the_round_time() {
    let mut h = Harness::leader();
    h.clock.advance(RETRY);
    // Leading: the round arms a wake-up at the deadline.
    assert_eq!(h.wake(), vec![Ev::Get, Ev::WakeAfter(DEADLINE - RETRY)]);
    let c = h.stored();
    h.got(Some(c));
    h.reply(Response::Written(Ok(())));
    // That wake-up comes while the renewed term is far from its deadline: no step-down.
    h.clock.advance(MS(100));
    let evs = h.wake();
    assert!(!evs.contains(&Ev::Revoked), "{evs:?}");
}

#[test]
fn another_fresh_holder_is_waited_for_then_taken_over_once_its_lease_runs_out() {
    let mut h = Harness::new();
    assert_eq!(h.feed(RecipeInput::Join), vec![Ev::Get]);
    let theirs = record("other", h.now() - 1_000, 4);
    let c = h.cm(&theirs);
    assert_eq!(
        h.got(Some(c.clone())),
        vec![Ev::WaitChange, Ev::WakeAfter(RETRY)]
    );
    // A change of the ConfigMap ends the wait at once.
    assert_eq!(h.reply(Response::Changed), vec![Ev::Get]);
    assert_eq!(
        h.got(Some(c.clone())),
        vec![Ev::WaitChange, Ev::WakeAfter(RETRY)]
    );
    // Unchanged for less than a lease since first seen: still theirs.
    h.clock.advance(LEASE - MS(1));
    assert_eq!(h.wake(), vec![Ev::Get]);
    assert_eq!(
        h.got(Some(c.clone())),
        vec![Ev::WaitChange, Ev::WakeAfter(RETRY)]
    );
    // A full lease since this process first saw that record: expired, taken over.
    h.clock.advance(MS(1));
    assert_eq!(h.wake(), vec![Ev::Get]);
    let me = h.identity();
    let at = h.now();
    assert_eq!(h.got(Some(c)), vec![Ev::Replace(record(&me, at, 5))]);
    assert_eq!(
        h.reply(Response::Written(Ok(()))),
        vec![
            Ev::TermGranted {
                epoch: 5,
                identity: me,
                started: at
            },
            Ev::Sweep(token(5))
        ]
    );
    assert_eq!(
        h.reply(Response::Swept),
        vec![Ev::Granted(token(5)), Ev::WakeAfter(RETRY)]
    );
}

#[test]
fn a_renewing_holder_is_never_taken_over() {
    let mut h = Harness::new();
    h.feed(RecipeInput::Join);
    for _ in 0..20 {
        let c = h.cm(&record("other", h.now(), 1));
        assert_eq!(h.got(Some(c)), vec![Ev::WaitChange, Ev::WakeAfter(RETRY)]);
        h.clock.advance(RETRY);
        assert_eq!(h.wake(), vec![Ev::Get]);
    }
}

#[test]
fn a_record_expired_by_its_own_renew_time_plus_skew_is_acquired_at_once() {
    let mut h = Harness::new();
    h.feed(RecipeInput::Join);
    let me = h.identity();
    // Renewed lease + skew (15 s + 15 s) ago: expired without waiting a lease.
    let old = record("dead", h.now() - 30_000, 2);
    let c = h.cm(&old);
    let at = h.now();
    assert_eq!(h.got(Some(c)), vec![Ev::Replace(record(&me, at, 3))]);
}

#[test]
fn a_record_short_of_lease_plus_skew_waits_a_full_lease_from_first_sight() {
    let mut h = Harness::new();
    h.feed(RecipeInput::Join);
    let old = record("maybe-skewed", h.now() - 29_999, 2);
    let c = h.cm(&old);
    assert_eq!(h.got(Some(c)), vec![Ev::WaitChange, Ev::WakeAfter(RETRY)]);
}

#[test]
fn a_released_record_is_acquired_at_once() {
    let mut h = Harness::new();
    h.feed(RecipeInput::Join);
    let me = h.identity();
    let released = LeaderRecord {
        holder_identity: String::new(),
        ..record("", h.now(), 7)
    };
    let c = h.cm(&released);
    let at = h.now();
    assert_eq!(h.got(Some(c)), vec![Ev::Replace(record(&me, at, 8))]);
}

#[test]
fn conflicts_retry_soon() {
    for err in [
        ApiError::Conflict,
        ApiError::AlreadyExists,
        ApiError::NotFound,
    ] {
        let mut h = Harness::new();
        h.feed(RecipeInput::Join);
        assert!(matches!(h.got(None)[..], [Ev::Create(_)]));
        let evs = h.reply(Response::Written(Err(err)));
        let [Ev::WaitChange, Ev::WakeAfter(d)] = evs[..] else {
            panic!("{evs:?}")
        };
        assert!(d >= MS(1) && d <= MS(20), "{d:?}");
        assert_eq!(h.wake(), vec![Ev::Get]);
    }
}

#[test]
fn other_write_errors_retry_after_the_retry_period() {
    let mut h = Harness::new();
    h.feed(RecipeInput::Join);
    h.got(None);
    let evs = h.reply(Response::Written(Err(ApiError::Refused("403".into()))));
    assert_eq!(evs, vec![Ev::WaitChange, Ev::WakeAfter(RETRY)]);
    let evs = h.reply(Response::Got {
        cm: Err(ApiError::Transient("timeout".into())),
        cleaned: false,
    });
    // A reply to the WaitChange is not a read: that stale shape is ignored.
    assert_eq!(evs, vec![]);
}

#[test]
fn leave_while_leading_ends_the_term_and_releases() {
    let mut h = Harness::leader();
    let me = h.identity();
    assert_eq!(
        h.feed(RecipeInput::Leave),
        vec![Ev::TermOver { epoch: 0 }, Ev::Revoked, Ev::Release(me)]
    );
    // The round timer elapses meanwhile: nothing.
    assert_eq!(h.wake(), vec![]);
    assert_eq!(h.reply(Response::Released), vec![Ev::Left, Ev::Done]);
    assert_eq!(h.feed(RecipeInput::Leave), vec![]);
}

#[test]
fn leave_while_not_leading_is_left_at_once() {
    let mut h = Harness::new();
    h.feed(RecipeInput::Join);
    let c = h.cm(&record("other", h.now(), 1));
    h.got(Some(c));
    assert_eq!(h.feed(RecipeInput::Leave), vec![Ev::Left, Ev::Done]);
    assert_eq!(h.reply(Response::Changed), vec![]);
    assert_eq!(h.wake(), vec![]);
}

#[test]
fn leave_with_an_acquiring_write_in_flight_releases_what_it_acquired() {
    let mut h = Harness::new();
    h.feed(RecipeInput::Join);
    let me = h.identity();
    assert!(matches!(h.got(None)[..], [Ev::Create(_)]));
    assert_eq!(h.feed(RecipeInput::Leave), vec![]);
    let evs = h.reply(Response::Written(Ok(())));
    assert!(!evs.iter().any(|e| matches!(e, Ev::Granted(_))), "{evs:?}");
    assert!(evs.contains(&Ev::TermOver { epoch: 0 }), "{evs:?}");
    assert_eq!(evs.last(), Some(&Ev::Release(me)));
    assert_eq!(h.reply(Response::Released), vec![Ev::Left, Ev::Done]);
}

#[test]
fn leave_with_a_failed_write_in_flight_is_left() {
    let mut h = Harness::new();
    h.feed(RecipeInput::Join);
    h.got(None);
    assert_eq!(h.feed(RecipeInput::Leave), vec![]);
    assert_eq!(
        h.reply(Response::Written(Err(ApiError::Conflict))),
        vec![Ev::Left, Ev::Done]
    );
}

#[test]
fn an_unreadable_record_is_never_overwritten() {
    let mut h = Harness::new();
    h.feed(RecipeInput::Join);
    let mut c = cm::new_cm(&Names::new("tenure-test"), LOCK);
    c.metadata.resource_version = Some("9".into());
    c.metadata.annotations = Some(BTreeMap::from([(
        LEADER_ANNOTATION.to_owned(),
        "{not a record".to_owned(),
    )]));
    for _ in 0..3 {
        assert_eq!(
            h.got(Some(c.clone())),
            vec![Ev::WaitChange, Ev::WakeAfter(RETRY)]
        );
        // However long it stays unreadable.
        h.clock.advance(LEASE * 3);
        assert_eq!(h.wake(), vec![Ev::Get]);
    }
}

#[test]
fn an_unreadable_record_ends_a_term_without_a_write() {
    let mut h = Harness::leader();
    h.clock.advance(RETRY);
    h.wake();
    let mut c = h.stored();
    c.metadata.annotations = Some(BTreeMap::from([(
        LEADER_ANNOTATION.to_owned(),
        "garbage".to_owned(),
    )]));
    assert_eq!(
        h.got(Some(c)),
        vec![
            Ev::TermOver { epoch: 0 },
            Ev::Revoked,
            Ev::WaitChange,
            Ev::WakeAfter(RETRY)
        ]
    );
}

#[test]
fn another_holder_seen_by_the_leader_ends_its_term() {
    let mut h = Harness::leader();
    h.clock.advance(RETRY);
    h.wake();
    let c = h.cm(&record("usurper", h.now(), 1));
    assert_eq!(
        h.got(Some(c)),
        vec![
            Ev::TermOver { epoch: 0 },
            Ev::Revoked,
            Ev::WaitChange,
            Ev::WakeAfter(RETRY)
        ]
    );
}

#[test]
fn the_lock_vanishing_under_the_leader_ends_its_term_and_is_not_recreated_at_once() {
    let mut h = Harness::leader();
    h.clock.advance(RETRY);
    h.wake();
    assert_eq!(
        h.got(None),
        vec![
            Ev::TermOver { epoch: 0 },
            Ev::Revoked,
            Ev::WaitChange,
            Ev::WakeAfter(RETRY)
        ]
    );
}

#[test]
fn cleaned_up_data_is_not_recreated() {
    let mut h = Harness::new();
    h.feed(RecipeInput::Join);
    let evs = h.reply(Response::Got {
        cm: Ok(None),
        cleaned: true,
    });
    assert_eq!(evs, vec![Ev::WaitChange, Ev::WakeAfter(RETRY)]);
}

#[test]
fn a_lost_session_leaves_and_releases() {
    let mut h = Harness::leader();
    let me = h.identity();
    let lost = SessionView {
        state: ConnectionState::Lost,
        generation: 1,
        suspensions: 0,
    };
    assert_eq!(
        h.feed(RecipeInput::Session(lost)),
        vec![Ev::TermOver { epoch: 0 }, Ev::Revoked, Ev::Release(me)]
    );
    assert_eq!(h.reply(Response::Released), vec![Ev::Left, Ev::Done]);
}

#[test]
fn suspensions_do_not_touch_the_term() {
    let mut h = Harness::leader();
    let suspended = SessionView {
        state: ConnectionState::Suspended,
        generation: 1,
        suspensions: 1,
    };
    assert_eq!(h.feed(RecipeInput::Session(suspended)), vec![]);
}

#[test]
fn a_gone_backend_finishes_the_participation() {
    let mut h = Harness::new();
    h.feed(RecipeInput::Join);
    assert_eq!(h.reply(Response::Gone), vec![Ev::Left, Ev::Done]);
}

#[test]
fn stale_replies_are_ignored() {
    let mut h = Harness::leader();
    h.clock.advance(RETRY);
    assert_eq!(h.wake(), vec![Ev::Get, Ev::WakeAfter(DEADLINE - RETRY)]);
    let stale = h.awaited - 1;
    let evs = h.feed(RecipeInput::Response(Reply {
        seq: stale,
        response: Response::Got {
            cm: Ok(None),
            cleaned: false,
        },
    }));
    assert_eq!(evs, vec![]);
    // Bookkeeping replies (seq 0) are never awaited.
    let evs = h.feed(RecipeInput::Response(Reply {
        seq: 0,
        response: Response::Noted,
    }));
    assert_eq!(evs, vec![]);
}
