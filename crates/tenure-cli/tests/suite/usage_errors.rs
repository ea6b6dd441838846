//! Usage errors keep clap's tips (a similar subcommand or flag) on their one line, exit 2.

use crate::common;

use common::{assert_error, run};

#[test]
fn a_mistyped_subcommand_names_the_similar_one() {
    let out = run(&["leader"]);
    assert_error(
        &out,
        2,
        "unrecognized subcommand 'leader'; tip: a similar subcommand exists: 'leaders'",
    );
    assert!(out.stdout.is_empty());
    assert_error(
        &run(&["leaders", "--wacth"]),
        2,
        "tip: a similar argument exists: '--watch'",
    );
    assert_error(
        &run(&["jobs", "lst"]),
        2,
        "tip: a similar subcommand exists: 'list'",
    );
}
