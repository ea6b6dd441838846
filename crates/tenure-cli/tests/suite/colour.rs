//! No ANSI escapes reach a pipe: help, usage errors, runtime errors and logs are plain text
//! when stdout and stderr are not terminals; `NO_COLOR` and `--color` are honoured on a terminal.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::process::Output;

use common::tenure;

const ESC: u8 = 0x1b;

fn has_escape(bytes: &[u8]) -> bool {
    bytes.contains(&ESC)
}

/// Runs `tenure args…` with piped stdout and stderr and debug logs on.
fn piped(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut c = tenure();
    c.args(args)
        .env("RUST_LOG", "tenure=debug")
        .env_remove("NO_COLOR");
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().expect("run tenure")
}

fn assert_plain(args: &[&str], out: &Output) {
    assert!(
        !has_escape(&out.stdout),
        "ESC on stdout of {args:?}: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !has_escape(&out.stderr),
        "ESC on stderr of {args:?}: {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An unreachable ZooKeeper on loopback: connecting logs warnings, then fails with exit 4.
const UNREACHABLE: &[&str] = &[
    "leaders",
    "--ha-type",
    "zookeeper",
    "--zookeeper-quorum",
    "127.0.0.1:1",
    "--timeout",
    "1s",
];

#[test]
fn piped_help_errors_and_logs_carry_no_escapes() {
    let cases: &[(&[&str], Option<i32>)] = &[
        (&["--help"], Some(0)),
        (&["demo", "--help"], Some(0)),
        (&["leaders", "--help"], Some(0)),
        (&["run", "--help"], Some(0)),
        (&["jobs"], Some(2)),
        (&["leader"], Some(2)),
        (&["leaders", "--wacth"], Some(2)),
        (&["leaders", "--output", "yaml"], Some(2)),
        (&["leaders"], Some(2)),
        (UNREACHABLE, Some(4)),
    ];
    for (args, code) in cases {
        let out = piped(args, &[]);
        assert_eq!(
            out.status.code(),
            *code,
            "{args:?}: {}",
            common::stderr(&out)
        );
        assert_plain(args, &out);
    }
    // The unreachable case did log (so the check above covered log lines).
    let out = piped(UNREACHABLE, &[]);
    assert!(
        common::stderr(&out).contains("WARN"),
        "{}",
        common::stderr(&out)
    );
}

#[test]
fn color_always_colours_a_pipe_and_never_wins_over_it() {
    let out = piped(&["--color", "always", "--help"], &[]);
    assert!(has_escape(&out.stdout), "--color always: coloured help");
    let mut args = vec!["--color=always"];
    args.extend_from_slice(UNREACHABLE);
    let out = piped(&args, &[]);
    assert!(has_escape(&out.stderr), "--color always: coloured logs");
    let out = piped(&["--color=always", "--color", "never", "--help"], &[]);
    assert_plain(&["--color never --help"], &out);
    let out = piped(&["leaders", "--color", "purple"], &[]);
    common::assert_error(&out, 2, "'purple'");
}

/// `tenure args…` on a pseudo-terminal (util-linux `script`), stdout and stderr both on it.
fn on_terminal(args: &str, no_color: bool) -> Option<Vec<u8>> {
    let script = ["/usr/bin/script", "/bin/script"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let mut c = std::process::Command::new(script);
    c.args(["-qec"])
        .arg(format!(
            "env RUST_LOG=tenure=debug '{}' {args}",
            env!("CARGO_BIN_EXE_tenure")
        ))
        .arg("/dev/null")
        .env_remove("FLINK_CONF_DIR")
        .env_remove("NO_COLOR");
    if no_color {
        c.env("NO_COLOR", "1");
    }
    Some(c.output().expect("run script").stdout)
}

#[test]
fn a_terminal_is_coloured_unless_no_color_is_set() {
    let Some(coloured) = on_terminal("--help", false) else {
        eprintln!("no `script` to make a terminal with; skipped");
        return;
    };
    assert!(has_escape(&coloured), "help on a terminal is coloured");
    let unreachable = UNREACHABLE.join(" ");
    for args in ["--help", "leader", unreachable.as_str()] {
        let text = on_terminal(args, true).unwrap();
        assert!(
            !has_escape(&text),
            "NO_COLOR: ESC in {args}: {:?}",
            String::from_utf8_lossy(&text)
        );
        assert!(!text.is_empty());
    }
    let text = on_terminal(&format!("--color never {unreachable}"), false).unwrap();
    assert!(!has_escape(&text), "{:?}", String::from_utf8_lossy(&text));
}
