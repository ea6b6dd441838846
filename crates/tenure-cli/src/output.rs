//! Output formats shared by the commands: human-readable tables, or JSON with stable field names
//! (documented in the crate's README).
//!
//! Every write to stdout goes through this module, so that:
//!
//! - text for a terminal is safe: backend data (node names, addresses, errors quoting them) may
//!   hold any characters, and [`sanitize`] escapes the ones a terminal would act on. Table cells
//!   and [`print_line`] apply it themselves; JSON is written exactly as serde escapes it;
//! - a closed stdout (`tenure … | head -1`) is an error the command returns, not a panic: the
//!   write fails with [`std::io::ErrorKind::BrokenPipe`], [`stdout_closed`] becomes true, and
//!   `main` exits quietly with status 0 (the reader stopped reading; the command did not fail).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::ValueEnum;
use serde::Serialize;

use crate::exit::CliError;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable tables.
    Table,
    /// One JSON document on stdout (stable field names); streams print one JSON object per line.
    Json,
}

/// Set once a write to stdout failed because its reader is gone.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Whether a write to stdout failed because the reading end of the pipe is closed; `main` then
/// exits quietly (status 0) instead of reporting the error the write returned.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Writes `bytes` to stdout as they are and flushes. A closed stdout is an error (and sets
/// [`stdout_closed`]), never a panic.
pub fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                STDOUT_CLOSED.store(true, Ordering::Relaxed);
                CliError::Other("stdout closed by its reader".into())
            } else {
                CliError::Other(format!("cannot write to stdout: {e}"))
            }
        })
}

/// Prints `value` as one pretty JSON document on stdout (exactly as serde escapes it).
pub fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Other(format!("cannot render JSON: {e}")))?;
    text.push('\n');
    write_stdout(text.as_bytes())
}

/// Prints `value` as one compact JSON line on stdout and flushes (for streams).
pub fn print_json_line<T: Serialize>(value: &T) -> Result<(), CliError> {
    let mut text = serde_json::to_string(value)
        .map_err(|e| CliError::Other(format!("cannot render JSON: {e}")))?;
    text.push('\n');
    write_stdout(text.as_bytes())
}

/// Prints one line of text on stdout, [`sanitize`]d (it stays one line whatever backend data it
/// quotes), and flushes, so a reader of a pipe sees it at once.
pub fn print_line(text: &str) -> Result<(), CliError> {
    let mut line = sanitize(text).into_owned();
    line.push('\n');
    write_stdout(line.as_bytes())
}

/// Whether a terminal could act on `c` instead of showing it: C0 controls (newline, escape, …),
/// DEL, C1 controls, the Unicode bidirectional controls (which reorder the text shown around
/// them) and the line and paragraph separators.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `text` safe for a terminal: every character a terminal could act on (see above) is escaped
/// the way Rust writes it (`\n`, `\r`, `\t`, `\x1b`, `\x7f`, `\u{85}`, `\u{202e}`); other
/// characters, backslashes included, are kept. Borrows when nothing needs escaping.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && is_unsafe(c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A table with a header row; columns are padded to their widest cell.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are blank). Every cell is [`sanitize`]d, so backend data can
    /// neither act on the terminal nor break the row.
    pub fn row(&mut self, cells: Vec<String>) {
        let cells = cells
            .into_iter()
            .map(|c| {
                if c.chars().any(is_unsafe) {
                    sanitize(&c).into_owned()
                } else {
                    c
                }
            })
            .collect();
        self.rows.push(cells);
    }

    /// The table as text, one line per row, without trailing blanks.
    pub fn render(&self) -> String {
        let cols = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(cols) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, w) in widths.iter().enumerate() {
                let cell = cells.get(i).map(String::as_str).unwrap_or("");
                if i + 1 == cols {
                    s.push_str(cell);
                } else {
                    s.push_str(&format!("{cell:<w$}  "));
                }
            }
            s.trim_end().to_owned()
        };
        let mut out = vec![line(&self.header)];
        out.extend(self.rows.iter().map(|r| line(r)));
        out.join("\n")
    }

    /// Prints the table on stdout.
    pub fn print(&self) -> Result<(), CliError> {
        let mut text = self.render();
        text.push('\n');
        write_stdout(text.as_bytes())
    }
}

/// `-` for a missing value in tables.
pub fn or_dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_columns_to_the_widest_cell() {
        let mut t = Table::new(&["A", "BB", "C"]);
        t.row(vec!["long cell".into(), "x".into(), "last".into()]);
        t.row(vec!["y".into()]);
        assert_eq!(t.render(), "A          BB  C\nlong cell  x   last\ny");
    }

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_borrowed() {
        assert!(matches!(sanitize("http://h:1 ☃ C:\\x"), Cow::Borrowed(_)));
        assert_eq!(sanitize("a\x1b[31mb"), "a\\x1b[31mb");
        assert_eq!(sanitize("a\nb\rc\td"), "a\\nb\\rc\\td");
        assert_eq!(sanitize("\0\x7f\u{85}\u{9b}"), "\\x00\\x7f\\u{85}\\u{9b}");
        assert_eq!(
            sanitize("x\u{202e}y\u{2066}z\u{2028}"),
            "x\\u{202e}y\\u{2066}z\\u{2028}"
        );
    }

    #[test]
    fn a_hostile_cell_renders_as_one_escaped_row() {
        let mut t = Table::new(&["COMPONENT", "ADDRESS"]);
        t.row(vec![
            "dispatcher".into(),
            "\x1b[31mhttp://evil\nrest_server  leader".into(),
        ]);
        let text = t.render();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(!text.contains('\x1b'), "{text}");
        assert_eq!(
            text.lines().nth(1),
            Some("dispatcher  \\x1b[31mhttp://evil\\nrest_server  leader")
        );
    }

    proptest::proptest! {
        #[test]
        fn any_text_sanitizes_to_one_safe_line(text in proptest::prelude::any::<String>()) {
            let out = sanitize(&text);
            proptest::prop_assert!(!out.chars().any(is_unsafe));
            proptest::prop_assert_eq!(out.lines().count(), usize::from(!out.is_empty()));
            if !text.chars().any(is_unsafe) {
                proptest::prop_assert_eq!(out.as_ref(), text.as_str());
            }
        }

        #[test]
        fn any_cells_render_one_line_per_row(
            rows in proptest::collection::vec(
                proptest::collection::vec(proptest::prelude::any::<String>(), 0..5),
                0..5,
            )
        ) {
            let mut t = Table::new(&["A", "B", "C"]);
            for r in &rows {
                t.row(r.clone());
            }
            let text = t.render();
            proptest::prop_assert_eq!(text.split('\n').count(), rows.len() + 1);
            proptest::prop_assert!(!text.chars().any(|c| c != '\n' && is_unsafe(c)));
        }
    }
}
