//! A small reader of JAAS login configuration files, the file a JVM ZooKeeper client reads from
//! `java.security.auth.login.config`:
//!
//! ```text
//! Client {
//!   org.apache.zookeeper.server.auth.DigestLoginModule required
//!   username="flink"
//!   password="secret";
//! };
//! ```
//!
//! Sections are `Name { entries };`, each entry `LoginModuleClass flag key=value ... ;` with
//! values quoted (`"..."`, `\` escapes the next character) or bare. `//` and `/* */` comments
//! are skipped. Malformed text is an error naming the line; nothing here panics.

use std::collections::BTreeMap;

/// One login module entry of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JaasEntry {
    /// The login module class, e.g. `org.apache.zookeeper.server.auth.DigestLoginModule`.
    pub module: String,
    /// The control flag (`required`, `optional`, ...).
    pub flag: String,
    /// The options, `key=value`.
    pub options: BTreeMap<String, String>,
}

impl JaasEntry {
    /// Whether the module class's simple name is `name` (`DigestLoginModule`, `Krb5LoginModule`).
    pub fn is_module(&self, name: &str) -> bool {
        self.module.rsplit('.').next() == Some(name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Punct(char),
}

fn tokenize(text: &str) -> Result<Vec<(Token, usize)>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let start = line;
                chars.next();
                let mut prev = ' ';
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                    }
                    if prev == '*' && c == '/' {
                        closed = true;
                        break;
                    }
                    prev = c;
                }
                if !closed {
                    return Err(format!("line {start}: unterminated /* comment"));
                }
            }
            '{' | '}' | ';' | '=' => out.push((Token::Punct(c), line)),
            '"' => {
                let start = line;
                let mut value = String::new();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' => match chars.next() {
                            Some(n) => value.push(n),
                            None => break,
                        },
                        c => {
                            if c == '\n' {
                                line += 1;
                            }
                            value.push(c);
                        }
                    }
                }
                if !closed {
                    return Err(format!("line {start}: unterminated quoted value"));
                }
                out.push((Token::Quoted(value), start));
            }
            c => {
                let mut word = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || matches!(n, '{' | '}' | ';' | '=' | '"') {
                        break;
                    }
                    word.push(n);
                    chars.next();
                }
                out.push((Token::Word(word), line));
            }
        }
    }
    Ok(out)
}

/// Parses a whole JAAS file into its sections (name → entries), in file order of entries.
pub fn parse(text: &str) -> Result<BTreeMap<String, Vec<JaasEntry>>, String> {
    let tokens = tokenize(text)?;
    let mut it = tokens.into_iter().peekable();
    let mut sections = BTreeMap::new();
    let last_line = text.lines().count().max(1);
    let eof = |what: &str| format!("line {last_line}: the file ends where {what} was expected");
    while let Some((tok, line)) = it.next() {
        let Token::Word(name) = tok else {
            return Err(format!("line {line}: expected a section name"));
        };
        match it.next() {
            Some((Token::Punct('{'), _)) => {}
            Some((_, l)) => return Err(format!("line {l}: expected '{{' after {name}")),
            None => return Err(eof("'{'")),
        }
        let mut entries = Vec::new();
        loop {
            let (module, line) = match it.next() {
                Some((Token::Punct('}'), _)) => break,
                Some((Token::Word(w), l)) => (w, l),
                Some((_, l)) => return Err(format!("line {l}: expected a login module class")),
                None => return Err(eof("'}'")),
            };
            let flag = match it.next() {
                Some((Token::Word(w), _)) => w,
                _ => return Err(format!("line {line}: expected a flag after {module}")),
            };
            let mut options = BTreeMap::new();
            loop {
                match it.next() {
                    Some((Token::Punct(';'), _)) => break,
                    Some((Token::Word(key), l)) => {
                        if !matches!(it.next(), Some((Token::Punct('='), _))) {
                            return Err(format!("line {l}: expected '=' after {key}"));
                        }
                        let value = match it.next() {
                            Some((Token::Word(v) | Token::Quoted(v), _)) => v,
                            _ => return Err(format!("line {l}: expected a value for {key}")),
                        };
                        options.insert(key, value);
                    }
                    Some((_, l)) => return Err(format!("line {l}: expected key=value or ';'")),
                    None => return Err(eof("';'")),
                }
            }
            entries.push(JaasEntry {
                module,
                flag,
                options,
            });
        }
        if matches!(it.peek(), Some((Token::Punct(';'), _))) {
            it.next();
        }
        sections.insert(name, entries);
    }
    Ok(sections)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_the_client_section() {
        let text = "// tenure test\nServer {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  user_super=\"adminsecret\";\n};\n/* the client */\nClient {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  username=\"bob\"\n  password=\"p\\\"w;d\";\n};\n";
        let s = parse(text).unwrap();
        let client = &s["Client"][0];
        assert!(client.is_module("DigestLoginModule"));
        assert_eq!(client.flag, "required");
        assert_eq!(client.options["username"], "bob");
        assert_eq!(client.options["password"], "p\"w;d");
        assert_eq!(s["Server"][0].options["user_super"], "adminsecret");
    }

    #[test]
    fn bare_values_and_several_entries() {
        let text = "Client { com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true keyTab=\"/k.keytab\" principal=\"zk/h@R\"; x.Other optional; }";
        let s = parse(text).unwrap();
        assert_eq!(s["Client"].len(), 2);
        assert_eq!(s["Client"][0].options["useKeyTab"], "true");
        assert!(s["Client"][0].is_module("Krb5LoginModule"));
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line) in [
            ("Client {\n m required\n username \"x\";\n};", "line 3"),
            ("Client {\n m required username=\"x;\n};", "line 2"),
            ("Client {\n m required username=x", "line 2"),
            ("Client", "line 1"),
            ("/* never closed", "line 1"),
            ("Client {\n m\n};", "line 2"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.starts_with(line), "{text:?}: {err}");
        }
    }

    proptest! {
        /// Whatever the text, the parser answers (sections or an error) without panicking.
        #[test]
        fn never_panics(text in "[a-zA-Z{};=\"\\\\/* \n_.]{0,80}") {
            let _ = parse(&text);
        }
    }
}
