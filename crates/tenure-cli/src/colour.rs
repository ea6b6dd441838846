//! When `tenure` colours its output: clap's help and errors, and the log lines on stderr.
//!
//! `--color auto|always|never` (global) decides; `auto`, the default, colours a stream only when
//! it is a terminal and `NO_COLOR` is unset or empty (<https://no-color.org>). A pipe or a file
//! never gets ANSI escapes unless `--color always` asks for them.
//!
//! The choice is read from the raw arguments before clap parses them ([`requested`]), so that
//! clap's own help and error output follow it too.

use std::ffi::OsString;
use std::io::IsTerminal;

use clap::ColorChoice;

/// The environment variable that turns colours off when set to anything but the empty string.
pub const NO_COLOR: &str = "NO_COLOR";

/// The `--color` choice in `args` (the program name first), before clap parses them: the last
/// `--color WHEN` / `--color=WHEN` before a bare `--` (after it, the arguments belong to `run`'s
/// CMD). A missing or invalid value is [`ColorChoice::Auto`] here; clap reports the invalid one.
pub fn requested(args: &[OsString]) -> ColorChoice {
    let mut choice = ColorChoice::Auto;
    let mut iter = args.iter().skip(1).map(|a| a.to_str().unwrap_or(""));
    while let Some(arg) = iter.next() {
        let value = match arg {
            "--" => break,
            "--color" => iter.next().unwrap_or(""),
            other => match other.strip_prefix("--color=") {
                Some(v) => v,
                None => continue,
            },
        };
        choice = match value {
            "always" => ColorChoice::Always,
            "never" => ColorChoice::Never,
            _ => ColorChoice::Auto,
        };
    }
    choice
}

/// Whether the environment forbids colours: `NO_COLOR` set to a non-empty value.
fn forbidden_by_env() -> bool {
    std::env::var_os(NO_COLOR).is_some_and(|v| !v.is_empty())
}

/// Whether to write ANSI escapes to a stream that `is_terminal` describes.
fn enabled(choice: ColorChoice, is_terminal: bool, forbidden: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => is_terminal && !forbidden,
    }
}

/// Whether the log lines on stderr may carry ANSI escapes under `choice`.
pub fn on_stderr(choice: ColorChoice) -> bool {
    enabled(choice, std::io::stderr().is_terminal(), forbidden_by_env())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_choice_is_read_before_parsing_and_not_from_cmd() {
        assert_eq!(requested(&args(&["tenure", "leaders"])), ColorChoice::Auto);
        assert_eq!(
            requested(&args(&["tenure", "--color", "never", "leaders"])),
            ColorChoice::Never
        );
        assert_eq!(
            requested(&args(&["tenure", "leaders", "--color=always"])),
            ColorChoice::Always
        );
        assert_eq!(
            requested(&args(&["tenure", "--color=always", "--color", "never"])),
            ColorChoice::Never
        );
        assert_eq!(
            requested(&args(&["tenure", "run", "--", "ls", "--color=always"])),
            ColorChoice::Auto
        );
        assert_eq!(
            requested(&args(&["tenure", "--color", "purple"])),
            ColorChoice::Auto
        );
        assert_eq!(requested(&args(&["tenure", "--color"])), ColorChoice::Auto);
    }

    #[test]
    fn auto_colours_only_a_terminal_without_no_color() {
        assert!(enabled(ColorChoice::Auto, true, false));
        assert!(!enabled(ColorChoice::Auto, false, false));
        assert!(!enabled(ColorChoice::Auto, true, true));
        assert!(enabled(ColorChoice::Always, false, true));
        assert!(!enabled(ColorChoice::Never, true, false));
    }
}
