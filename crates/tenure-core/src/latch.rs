//! Who is in line in a leader latch, and who is first: the one rule shared by the latch recipes
//! that elect and the tools that show the election.
//!
//! A latch directory's children take part in the election when their name is a well-formed
//! latch node: it ends in `latch-` (Curator's `LeaderLatch.LOCK_NAME`) followed by at least
//! [`SEQUENCE_DIGITS`] ASCII digits (the server's sequence suffix, ZooKeeper's `%010d`) that fit
//! an `i64`. The line is ordered by that number, then by name (Curator sorts by the part after
//! the last `latch-`); the first in line leads. Any other child is foreign: never in line, never
//! the leader.
//!
//! ```
//! use tenure_core::latch::{leader, sequence};
//!
//! let children = ["_c_b-latch-0000000012", "junk☃", "_c_a-latch-0000000003", "member-7"];
//! assert_eq!(sequence("_c_a-latch-0000000003"), Some(3));
//! assert_eq!(sequence("junk☃"), None);
//! assert_eq!(leader(&children), Some("_c_a-latch-0000000003"));
//! ```

/// The lock name of Curator's `LeaderLatch` (`LeaderLatch.LOCK_NAME`): a latch node's name ends
/// in this followed by the sequence number.
pub const LOCK_NAME: &str = "latch-";

/// The fewest digits of a well-formed sequence suffix (ZooKeeper formats its sequence counter
/// as `%010d`).
pub const SEQUENCE_DIGITS: usize = 10;

/// The sequence number of a well-formed latch node name (`*latch-<at least 10 digits>`, the
/// number after the last `latch-`), `None` for any other name. Never panics, whatever the name.
pub fn sequence(name: &str) -> Option<i64> {
    let i = name.rfind(LOCK_NAME)?;
    // `LOCK_NAME` is ASCII, so the byte after the match is a char boundary.
    let digits = name.get(i + LOCK_NAME.len()..)?;
    if digits.len() < SEQUENCE_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether `name` is a well-formed latch node (takes part in the election).
pub fn is_participant(name: &str) -> bool {
    sequence(name).is_some()
}

/// The participants among `children` (names of a latch directory's children) in line order: by
/// sequence number, then by name. Foreign children are left out.
pub fn sorted_participants<S: AsRef<str>>(children: &[S]) -> Vec<(i64, &str)> {
    let mut out: Vec<(i64, &str)> = children
        .iter()
        .filter_map(|c| {
            let c = c.as_ref();
            sequence(c).map(|s| (s, c))
        })
        .collect();
    out.sort_unstable();
    out
}

/// The child first in line (the latch's leader), if any child is a participant.
pub fn leader<S: AsRef<str>>(children: &[S]) -> Option<&str> {
    sorted_participants(children).first().map(|(_, n)| *n)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn well_formed_names_are_curators() {
        assert_eq!(sequence("_c_abc-latch-0000000012"), Some(12));
        assert_eq!(sequence("latch-0000000003"), Some(3));
        assert_eq!(sequence("_c_abc-latch-12"), None, "fewer than 10 digits");
        assert_eq!(sequence("_c_abc-lock-0000000012"), None);
        assert_eq!(sequence("member-0000000007"), None);
        assert_eq!(sequence("x-latch-"), None);
        assert_eq!(sequence("junk☃"), None);
        assert_eq!(sequence("latch-0000000001☃"), None);
        assert_eq!(sequence("☃latch-0000000001"), Some(1));
        assert_eq!(sequence("a-latch-0000000001-latch-0000000002"), Some(2));
        assert_eq!(sequence("latch--000000001"), None, "no sign");
        assert_eq!(sequence("latch-+000000001"), None, "no sign");
        assert_eq!(
            sequence("_c_abc-latch-0000000000000000042"),
            Some(42),
            "longer suffixes count"
        );
        assert_eq!(
            sequence("latch-99999999999999999999"),
            None,
            "beyond i64 is foreign"
        );
    }

    #[test]
    fn the_line_is_by_sequence_then_name_and_ignores_foreign_nodes() {
        let children = vec![
            "_c_ffff-latch-0000000001".to_owned(),
            "_c_0000-latch-0000000002".to_owned(),
            "foreign".to_owned(),
            "0000000000".to_owned(),
            "_c_8888-latch-0000000000".to_owned(),
            "_c_7777-latch-0000000000".to_owned(),
        ];
        assert_eq!(
            sorted_participants(&children),
            vec![
                (0, "_c_7777-latch-0000000000"),
                (0, "_c_8888-latch-0000000000"),
                (1, "_c_ffff-latch-0000000001"),
                (2, "_c_0000-latch-0000000002"),
            ]
        );
        assert_eq!(leader(&children), Some("_c_7777-latch-0000000000"));
        assert_eq!(leader(&["junk", "member-0000000001"]), None);
        assert_eq!(leader::<&str>(&[]), None);
    }

    proptest! {
        #[test]
        fn any_name_is_judged_without_panic(name in any::<String>()) {
            let seq = sequence(&name);
            prop_assert_eq!(seq.is_some(), is_participant(&name));
            if let Some(s) = seq {
                prop_assert!(s >= 0);
                prop_assert!(name.contains(LOCK_NAME));
            }
        }

        #[test]
        fn the_leader_is_a_participant_with_the_lowest_sequence(
            names in proptest::collection::vec(
                prop_oneof![any::<String>(), "[a-z_☃]{0,4}(latch-)?[0-9]{0,12}"],
                0..8,
            )
        ) {
            match leader(&names) {
                None => prop_assert!(names.iter().all(|n| !is_participant(n))),
                Some(l) => {
                    let min = names.iter().filter_map(|n| sequence(n)).min();
                    prop_assert_eq!(sequence(l), min);
                }
            }
        }
    }
}
