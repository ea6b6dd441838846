//! Reading Flink configuration files into flat dotted keys.
//!
//! Two formats exist, as in Flink (`GlobalConfiguration`):
//!
//! - the legacy `flink-conf.yaml` (Flink ≤ 1.18, and 1.19/1.20 in legacy mode): one `key: value`
//!   per line, `#` starts a comment anywhere on the line, blank lines ignored, no nesting, no
//!   quoting. Flink logs and skips a malformed line; tenure rejects it with its line number.
//! - the standard-YAML `config.yaml` (Flink 1.19+, the only format in 2.x): nested mappings are
//!   flattened to dotted keys (`high-availability: {type: zookeeper}` gives
//!   `high-availability.type = zookeeper`), scalars become their text, lists are joined with `;`
//!   (Flink's list syntax in flat values) and null values are left unset.

use std::fs::Metadata;
use std::io::Read as _;
use std::path::Path;

use yaml_serde::Value;

use super::{ConfigError, Configuration};

/// The file name that selects the legacy line parser in [`read_file`].
pub(super) const LEGACY_FILE_NAME: &str = "flink-conf.yaml";

/// Parses the legacy flat `flink-conf.yaml` line format.
pub(super) fn parse_legacy(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut pairs = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let content = line.split('#').next().unwrap_or_default().trim();
        if content.is_empty() {
            continue;
        }
        // Deliberately no line content in the messages: a malformed line may hold a secret.
        let Some((key, value)) = content.split_once(": ") else {
            return Err(ConfigError::Parse {
                line: line_no,
                message: "expected \"key: value\" (a colon followed by a space)".to_owned(),
            });
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            return Err(ConfigError::Parse {
                line: line_no,
                message: "empty key before \": \"".to_owned(),
            });
        }
        pairs.push((key.to_owned(), value.to_owned()));
    }
    Ok(pairs)
}

/// Parses a standard-YAML `config.yaml` and flattens it to dotted keys.
pub(super) fn parse_yaml(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let document: Value = yaml_serde::from_str(text).map_err(|e| ConfigError::Yaml {
        message: e.to_string(),
    })?;
    let mut pairs = Vec::new();
    match untag(&document) {
        Value::Null => {}
        Value::Mapping(_) => flatten("", &document, &mut pairs)?,
        _ => {
            return Err(ConfigError::Yaml {
                message: "the document must be a mapping of configuration keys to values"
                    .to_owned(),
            });
        }
    }
    Ok(pairs)
}

impl Configuration {
    /// The largest configuration file [`from_file`](Self::from_file) reads, 1 MiB (Flink's are a
    /// few KiB). A bigger file is refused without being read.
    pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
}

/// Reads a configuration file, choosing the parser by file name: `flink-conf.yaml` is the legacy
/// line format, any other name is standard YAML. Only a regular file of at most
/// [`Configuration::MAX_FILE_BYTES`] is read: a directory, a FIFO or a device (`/dev/zero`) is
/// refused from its metadata, before it is opened, and never more than the limit is read.
pub(super) fn read_file(path: &Path) -> Result<Configuration, ConfigError> {
    let io = |message: String| ConfigError::Io {
        path: path.to_path_buf(),
        message,
    };
    check_readable(&std::fs::metadata(path).map_err(|e| io(e.to_string()))?).map_err(io)?;
    let file = std::fs::File::open(path).map_err(|e| io(e.to_string()))?;
    // The path may have been replaced between the two looks: judge what was opened, too.
    check_readable(&file.metadata().map_err(|e| io(e.to_string()))?).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(Configuration::MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io(e.to_string()))?;
    if bytes.len() as u64 > Configuration::MAX_FILE_BYTES {
        return Err(io(too_large()));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        io(format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    let legacy = path
        .file_name()
        .is_some_and(|name| name == LEGACY_FILE_NAME);
    let pairs = if legacy {
        parse_legacy(&text)?
    } else {
        parse_yaml(&text)?
    };
    Ok(Configuration::from_pairs(pairs))
}

/// Why a file with this metadata is not read as a configuration file, if it is not.
fn check_readable(meta: &Metadata) -> Result<(), String> {
    let kind = meta.file_type();
    if kind.is_dir() {
        return Err("is a directory, not a configuration file".to_owned());
    }
    if !kind.is_file() {
        return Err(format!(
            "not a regular file ({}); a configuration file must be one",
            special_kind(&kind)
        ));
    }
    if meta.len() > Configuration::MAX_FILE_BYTES {
        return Err(format!("{} bytes: {}", meta.len(), too_large()));
    }
    Ok(())
}

fn too_large() -> String {
    format!(
        "larger than the {} KiB a configuration file may have",
        Configuration::MAX_FILE_BYTES / 1024
    )
}

/// What kind of special file this is, in words.
#[cfg(unix)]
fn special_kind(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_kind: &std::fs::FileType) -> &'static str {
    "a special file"
}

/// Strips YAML tags (`!tag value`), keeping the tagged value.
fn untag(value: &Value) -> &Value {
    let mut value = value;
    while let Value::Tagged(tagged) = value {
        value = &tagged.value;
    }
    value
}

fn flatten(
    prefix: &str,
    value: &Value,
    out: &mut Vec<(String, String)>,
) -> Result<(), ConfigError> {
    match untag(value) {
        Value::Null => {}
        Value::Mapping(mapping) => {
            for (key, child) in mapping {
                let Some(key) = scalar_text(untag(key)) else {
                    return Err(ConfigError::Yaml {
                        message: format!(
                            "a key under {:?} is a list or mapping; keys must be scalars",
                            if prefix.is_empty() {
                                "<top level>"
                            } else {
                                prefix
                            }
                        ),
                    });
                };
                let full = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&full, child, out)?;
            }
        }
        Value::Sequence(items) => {
            let joined: Vec<String> = items.iter().map(flow_text).collect();
            out.push((prefix.to_owned(), joined.join(";")));
        }
        scalar => out.push((prefix.to_owned(), flow_text(scalar))),
    }
    Ok(())
}

/// The text of a scalar, or `None` for lists and mappings.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => Some(String::new()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Sequence(_) | Value::Mapping(_) => None,
        Value::Tagged(tagged) => scalar_text(&tagged.value),
    }
}

/// Scalars as their text; nested lists and mappings (inside a list) in YAML flow style.
fn flow_text(value: &Value) -> String {
    if let Some(text) = scalar_text(value) {
        return text;
    }
    match untag(value) {
        Value::Sequence(items) => {
            let items: Vec<String> = items.iter().map(flow_text).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Mapping(mapping) => {
            let entries: Vec<String> = mapping
                .iter()
                .map(|(k, v)| format!("{}: {}", flow_text(k), flow_text(v)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        _ => String::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn legacy(text: &str) -> Configuration {
        Configuration::parse_legacy(text).unwrap()
    }

    fn yaml(text: &str) -> Configuration {
        Configuration::parse_yaml(text).unwrap()
    }

    #[test]
    fn legacy_comments_blank_lines_and_colons_in_values() {
        let c = legacy(
            "# HA settings\n\
             \n\
             high-availability: zookeeper   # trailing comment\n\
             high-availability.zookeeper.quorum: zk1:2181, zk2:2181\n\
             high-availability.storageDir: hdfs:///flink/ha/\r\n\
             \x20  # indented comment\n\
             key.with.spaces :  some value  \n",
        );
        assert_eq!(c.get("high-availability"), Some("zookeeper"));
        assert_eq!(
            c.get("high-availability.zookeeper.quorum"),
            Some("zk1:2181, zk2:2181")
        );
        assert_eq!(
            c.get("high-availability.storageDir"),
            Some("hdfs:///flink/ha/")
        );
        assert_eq!(c.get("key.with.spaces"), Some("some value"));
        assert_eq!(c.iter().count(), 4);
    }

    #[test]
    fn legacy_later_line_wins_and_bom_is_ignored() {
        let c = legacy("\u{feff}a: 1\na: 2\n");
        assert_eq!(c.get("a"), Some("2"));
    }

    #[test]
    fn legacy_errors_name_the_line() {
        let err = Configuration::parse_legacy("a: 1\n\nbroken-line\n").unwrap_err();
        assert!(matches!(err, ConfigError::Parse { line: 3, .. }), "{err:?}");
        assert!(err.to_string().contains("line 3"), "{err}");
        let err = Configuration::parse_legacy("password:secret\n").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        let err = Configuration::parse_legacy("ok: 1\n: value\n").unwrap_err();
        assert!(matches!(err, ConfigError::Parse { line: 2, .. }), "{err:?}");
        // "key:" with nothing after it has no ": " once trimmed.
        assert!(Configuration::parse_legacy("key: \n").is_err());
    }

    #[test]
    fn yaml_nested_is_flattened() {
        let c = yaml(
            "high-availability:\n\
             \x20 type: zookeeper\n\
             \x20 storageDir: s3://bucket/ha\n\
             \x20 zookeeper:\n\
             \x20   quorum: zk1:2181,zk2:2181\n\
             \x20   client:\n\
             \x20     session-timeout: 60 s\n\
             \x20     max-retry-attempts: 7\n\
             \x20     tolerate-suspended-connections: true\n\
             execution.checkpointing.num-retained: 3\n\
             unset:\n\
             ratio: 0.5\n",
        );
        assert_eq!(c.get("high-availability.type"), Some("zookeeper"));
        assert_eq!(
            c.get("high-availability.storageDir"),
            Some("s3://bucket/ha")
        );
        assert_eq!(
            c.get("high-availability.zookeeper.quorum"),
            Some("zk1:2181,zk2:2181")
        );
        assert_eq!(
            c.get("high-availability.zookeeper.client.session-timeout"),
            Some("60 s")
        );
        assert_eq!(
            c.get("high-availability.zookeeper.client.max-retry-attempts"),
            Some("7")
        );
        assert_eq!(
            c.get("high-availability.zookeeper.client.tolerate-suspended-connections"),
            Some("true")
        );
        assert_eq!(c.get("execution.checkpointing.num-retained"), Some("3"));
        assert_eq!(c.get("ratio"), Some("0.5"));
        assert_eq!(c.get("unset"), None);
    }

    #[test]
    fn yaml_lists_are_joined_with_semicolons() {
        let c = yaml(
            "high-availability.etcd.endpoints: [http://a:2379, http://b:2379]\n\
             env:\n\
             \x20 - x\n\
             \x20 - {k: v}\n\
             \x20 - [1, 2]\n",
        );
        assert_eq!(
            c.get("high-availability.etcd.endpoints"),
            Some("http://a:2379;http://b:2379")
        );
        assert_eq!(c.get("env"), Some("x;{k: v};[1, 2]"));
    }

    #[test]
    fn yaml_empty_document_and_errors() {
        assert_eq!(yaml("").iter().count(), 0);
        assert_eq!(yaml("# only a comment\n").iter().count(), 0);
        assert!(matches!(
            Configuration::parse_yaml("just a string"),
            Err(ConfigError::Yaml { .. })
        ));
        assert!(matches!(
            Configuration::parse_yaml("a: [unclosed"),
            Err(ConfigError::Yaml { .. })
        ));
        assert!(matches!(
            Configuration::parse_yaml("? [a, b]\n: c\n"),
            Err(ConfigError::Yaml { .. })
        ));
    }

    #[test]
    fn from_file_picks_parser_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let legacy_path = dir.path().join("flink-conf.yaml");
        std::fs::write(&legacy_path, "a.b: x: y # c\n").unwrap();
        let c = Configuration::from_file(&legacy_path).unwrap();
        assert_eq!(c.get("a.b"), Some("x: y"));

        let yaml_path = dir.path().join("config.yaml");
        std::fs::write(&yaml_path, "a:\n  b: 'x: y # c'\n").unwrap();
        let c = Configuration::from_file(&yaml_path).unwrap();
        assert_eq!(c.get("a.b"), Some("x: y # c"));

        let missing = dir.path().join("nope.yaml");
        let err = Configuration::from_file(&missing).unwrap_err();
        assert!(matches!(&err, ConfigError::Io { path, .. } if path == &missing));
        assert!(err.to_string().contains("nope.yaml"), "{err}");
    }

    #[test]
    fn only_regular_files_up_to_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let reason = |path: &Path| match Configuration::from_file(path).unwrap_err() {
            ConfigError::Io { path: p, message } => {
                assert_eq!(p, path);
                message
            }
            other => panic!("not an I/O error: {other}"),
        };
        // A sparse file: its size is judged from the metadata, nothing is read.
        let huge = dir.path().join("config.yaml");
        let f = std::fs::File::create(&huge).unwrap();
        f.set_len(8 * 1024 * 1024 * 1024).unwrap();
        drop(f);
        let m = reason(&huge);
        assert!(m.contains("larger than the 1024 KiB"), "{m}");
        let at_limit = dir.path().join("limit.yaml");
        let mut text = b"a: b\n".to_vec();
        text.resize(Configuration::MAX_FILE_BYTES as usize, b'\n');
        std::fs::write(&at_limit, &text).unwrap();
        assert_eq!(
            Configuration::from_file(&at_limit).unwrap().get("a"),
            Some("b")
        );
        text.push(b'\n');
        std::fs::write(&at_limit, &text).unwrap();
        assert!(reason(&at_limit).contains("larger than"));
        assert!(reason(dir.path()).contains("is a directory"));
        let binary = dir.path().join("binary.yaml");
        std::fs::write(&binary, b"a: \xff\n").unwrap();
        assert!(reason(&binary).contains("not UTF-8"));
        #[cfg(unix)]
        {
            let m = reason(Path::new("/dev/zero"));
            assert!(m.contains("not a regular file (a character device)"), "{m}");
            let fifo = dir.path().join("fifo.yaml");
            let made = std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap();
            assert!(made.success());
            // Opening a FIFO would block until a writer comes: it must be refused before.
            let m = reason(&fifo);
            assert!(m.contains("a FIFO"), "{m}");
        }
    }

    proptest! {
        #[test]
        fn legacy_never_panics(text in ".*") {
            let _ = Configuration::parse_legacy(&text);
        }

        #[test]
        fn yaml_never_panics(text in ".*") {
            let _ = Configuration::parse_yaml(&text);
        }

        #[test]
        fn yaml_like_text_never_panics(text in "([a-z.: \\-\\[\\]{},'\"#&*!|>]|\n|  ){0,80}") {
            let _ = Configuration::parse_yaml(&text);
            let _ = Configuration::parse_legacy(&text);
        }

        #[test]
        fn legacy_round_trips_simple_pairs(
            pairs in proptest::collection::btree_map("[a-z][a-z.-]{0,12}", "[a-z0-9:/][a-z0-9:/ ]{0,12}[a-z0-9:/]", 0..8)
        ) {
            let text: String = pairs.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
            let c = Configuration::parse_legacy(&text).unwrap();
            let got: Vec<(&str, &str)> = c.iter().collect();
            let want: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert_eq!(got, want);
        }
    }
}
