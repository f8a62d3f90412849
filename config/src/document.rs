//! TOML text → a config type ([`NodeConfig`](crate::NodeConfig), the control plane's settings),
//! reporting every syntax and type error with its field path.
//!
//! serde stops at the first error. To report them all, the document is parsed once into a
//! spanned tree; after each error the entry that caused it is removed from a working copy and
//! deserialization runs again. Each error's span is then looked up in the original tree to
//! name its field path (`services[1].origin`), with indices as the user wrote them.

use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::ConfigError;

/// Upper bound on deserialization rounds, and so on the errors reported; each round removes
/// one entry, so a document with fewer entries ends sooner.
const MAX_ROUNDS: usize = 200;

type Doc<'i> = Spanned<DeTable<'i>>;

/// Parses and deserializes `text`; on failure returns every error found, in file order.
pub fn from_toml<T: DeserializeOwned>(text: &str, file: &Path) -> Result<T, Vec<ConfigError>> {
    let (doc, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        return Err(syntax_errors.iter().map(|e| syntax_error(text, file, e)).collect());
    }
    let mut work = doc.clone();
    // (table span, key) of every entry removed from `work`, to recognise the "missing field"
    // errors that the removal itself causes.
    let mut removed: Vec<(Range<usize>, String)> = Vec::new();
    let mut found: Vec<(usize, ConfigError)> = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let error = match T::deserialize(toml::de::Deserializer::from(work.clone())) {
            Ok(config) if found.is_empty() => return Ok(config),
            Ok(_) => break,
            Err(error) => error,
        };
        let Some(span) = error.span() else {
            found.push((0, ConfigError::new(file, "", error.message())));
            break;
        };
        let at = position(text, span.start);
        if let Some(field) = missing_field(error.message()) {
            let table = find_table(&doc, &span);
            if !removed.contains(&(span.clone(), field.to_owned())) {
                let parent = table.as_deref().unwrap_or("");
                let message = if parent.is_empty() {
                    format!("missing required field `{field}`")
                } else {
                    format!("missing required field `{field}` in the table at {at}")
                };
                found.push((span.start, ConfigError::new(file, join(parent, field), message)));
            }
            // serde checks missing fields last, so the rest of this table was fine: drop it
            // and go on with its siblings. The root cannot be dropped, and nothing is left.
            if table.is_none_or(|path| path.is_empty()) || !remove_table(&mut work, &span, &mut removed) {
                break;
            }
        } else {
            let path = find_path(&doc, &span).unwrap_or_else(|| format!("({at})"));
            let message = format!("{} ({at})", plain_types(error.message()));
            found.push((span.start, ConfigError::new(file, path, message)));
            match remove_entry(&mut work, &span) {
                Some(entry) => removed.push(entry),
                None => break,
            }
        }
    }
    found.sort_by_key(|(start, _)| *start);
    Err(found.into_iter().map(|(_, error)| error).collect())
}

/// A syntax error has no field path: its position stands in for one.
fn syntax_error(text: &str, file: &Path, error: &toml::de::Error) -> ConfigError {
    let path = match error.span() {
        Some(span) => format!("({})", position(text, span.start)),
        None => "(unknown position)".to_owned(),
    };
    ConfigError::new(file, path, format!("invalid TOML: {}", error.message()))
}

/// Line and column (1-based, in characters) of a byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    line: usize,
    column: usize,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

fn position(text: &str, offset: usize) -> Position {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Position { line: before.matches('\n').count() + 1, column: before[line_start..].chars().count() + 1 }
}

/// serde names Rust types in its messages; say what to write in TOML instead.
fn plain_types(message: &str) -> String {
    let mut out = message
        .replace("expected usize", "expected a whole number")
        .replace("expected u8", "expected a whole number from 0 to 255")
        .replace("expected u32", "expected a whole number")
        .replace("expected u64", "expected a whole number")
        .replace("expected f64", "expected a number such as 0.1")
        .replace("expected a sequence", "expected an array")
        .replace("expected a map", "expected a table");
    // "expected struct ServiceConfig" → "expected a table".
    while let Some(start) = out.find("expected struct ") {
        let name_start = start + "expected struct ".len();
        let name_end = out[name_start..]
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .map_or(out.len(), |i| name_start + i);
        out.replace_range(start..name_end, "expected a table");
    }
    out
}

/// The field named by serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.strip_suffix('`')
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_owned() } else { format!("{parent}.{key}") }
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && outer.start < outer.end
}

/// Path of the deepest key or value whose span holds `span`.
fn find_path(doc: &Doc<'_>, span: &Range<usize>) -> Option<String> {
    find_in_table(doc.get_ref(), "", span)
}

fn find_in_table(table: &DeTable<'_>, path: &str, span: &Range<usize>) -> Option<String> {
    for (key, value) in table.iter() {
        let here = join(path, key.get_ref());
        if contains(&key.span(), span) {
            return Some(here);
        }
        if let Some(deeper) = find_in_value(value, &here, span) {
            return Some(deeper);
        }
    }
    None
}

fn find_in_value(value: &Spanned<DeValue<'_>>, path: &str, span: &Range<usize>) -> Option<String> {
    let deeper = match value.get_ref() {
        DeValue::Table(table) => find_in_table(table, path, span),
        DeValue::Array(array) => {
            array.iter().enumerate().find_map(|(i, item)| find_in_value(item, &format!("{path}[{i}]"), span))
        }
        _ => None,
    };
    deeper.or_else(|| contains(&value.span(), span).then(|| path.to_owned()))
}

/// Path of the deepest table whose span is exactly `span` (`""` for the root). A table header
/// such as `[[services]]` is the span serde reports for a table's missing fields.
fn find_table(doc: &Doc<'_>, span: &Range<usize>) -> Option<String> {
    fn in_value(value: &Spanned<DeValue<'_>>, path: &str, span: &Range<usize>) -> Option<String> {
        let deeper = match value.get_ref() {
            DeValue::Table(table) => in_table(table, path, span),
            DeValue::Array(array) => {
                array.iter().enumerate().find_map(|(i, item)| in_value(item, &format!("{path}[{i}]"), span))
            }
            _ => None,
        };
        let exact = value.get_ref().is_table() && value.span() == *span;
        deeper.or_else(|| exact.then(|| path.to_owned()))
    }
    fn in_table(table: &DeTable<'_>, path: &str, span: &Range<usize>) -> Option<String> {
        table.iter().find_map(|(key, value)| in_value(value, &join(path, key.get_ref()), span))
    }
    in_table(doc.get_ref(), "", span).or_else(|| (doc.span() == *span).then(String::new))
}

/// Removes the deepest table entry whose key or value holds `span`; returns the span of the
/// table it was in and its key.
fn remove_entry(doc: &mut Doc<'_>, span: &Range<usize>) -> Option<(Range<usize>, String)> {
    let doc_span = doc.span();
    remove_entry_in_table(doc.get_mut(), doc_span, span)
}

fn remove_entry_in_table(
    table: &mut DeTable<'_>,
    table_span: Range<usize>,
    span: &Range<usize>,
) -> Option<(Range<usize>, String)> {
    let mut hit = None;
    for (key, value) in table.iter_mut() {
        if let Some(removed) = remove_entry_in_value(value, span) {
            return Some(removed);
        }
        if contains(&key.span(), span) || contains(&value.span(), span) {
            hit = Some(key.get_ref().to_string());
            break;
        }
    }
    let key = hit?;
    table.remove(key.as_str());
    Some((table_span, key))
}

fn remove_entry_in_value(value: &mut Spanned<DeValue<'_>>, span: &Range<usize>) -> Option<(Range<usize>, String)> {
    let value_span = value.span();
    match value.get_mut() {
        DeValue::Table(table) => remove_entry_in_table(table, value_span, span),
        DeValue::Array(array) => array.iter_mut().find_map(|item| remove_entry_in_value(item, span)),
        _ => None,
    }
}

/// Removes the deepest table whose span is exactly `span`, from the table or array holding
/// it; a removed table entry is added to `removed`. Returns whether one was removed.
fn remove_table(doc: &mut Doc<'_>, span: &Range<usize>, removed: &mut Vec<(Range<usize>, String)>) -> bool {
    type Removed = Vec<(Range<usize>, String)>;
    fn in_table(table: &mut DeTable<'_>, table_span: Range<usize>, span: &Range<usize>, removed: &mut Removed) -> bool {
        let mut hit = None;
        for (key, value) in table.iter_mut() {
            if in_value(value, span, removed) {
                return true;
            }
            if value.get_ref().is_table() && value.span() == *span {
                hit = Some(key.get_ref().to_string());
                break;
            }
        }
        let Some(key) = hit else { return false };
        table.remove(key.as_str());
        removed.push((table_span, key));
        true
    }
    fn in_value(value: &mut Spanned<DeValue<'_>>, span: &Range<usize>, removed: &mut Removed) -> bool {
        let value_span = value.span();
        match value.get_mut() {
            DeValue::Table(table) => in_table(table, value_span, span, removed),
            DeValue::Array(array) => {
                if array.iter_mut().any(|item| in_value(item, span, removed)) {
                    return true;
                }
                let Some(index) = array.iter().position(|item| item.get_ref().is_table() && item.span() == *span)
                else {
                    return false;
                };
                let mut kept = toml::de::DeArray::new();
                for (i, item) in array.iter().enumerate() {
                    if i != index {
                        kept.push(item.clone());
                    }
                }
                *array = kept;
                true
            }
            _ => false,
        }
    }
    let doc_span = doc.span();
    in_table(doc.get_mut(), doc_span, span, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let text = "a = 1\nb = \"\u{e9}\u{e9}\"\n";
        let cases = [(0, 1, 1), (4, 1, 5), (6, 2, 1), (11, 2, 6), (13, 2, 7), (999, 3, 1)];
        for (offset, line, column) in cases {
            assert_eq!(position(text, offset), Position { line, column }, "offset {offset}");
        }
        // Inside a multi-byte character: rounds down instead of panicking.
        assert_eq!(position(text, 12), Position { line: 2, column: 6 });
    }

    /// (path, message fragment) of every error `text` produces, in order.
    fn errors(text: &str) -> Vec<(String, String)> {
        match from_toml::<crate::NodeConfig>(text, Path::new("edge.toml")) {
            Ok(config) => panic!("accepted: {config:?}"),
            Err(errors) => errors.into_iter().map(|e| (e.path, e.message)).collect(),
        }
    }

    fn assert_errors(text: &str, expected: &[(&str, &str)]) {
        let got = errors(text);
        assert_eq!(got.len(), expected.len(), "{got:#?}");
        for ((path, message), (want_path, fragment)) in got.iter().zip(expected) {
            assert_eq!(path, want_path, "{got:#?}");
            assert!(message.contains(fragment), "{path}: {message}");
        }
    }

    #[test]
    fn reports_every_type_error_in_file_order_with_its_path() {
        let text = r#"
[node]
name = "edge-1"
colour = "blue"

[listen]
http = "127.0.0.1:8080"
admin = "localhost:9090"

[cache]
memory = "lots"
disk = -5

[limits]
max_headers = "100"

[[services]]
name = "shop"
hosts = ["shop.example"]
origin = "ftp://origin"
default_ttl = 60

[[services]]
name = "blog"
origin = "https://blog-origin.example"

[[services]]
name = "api"
hosts = ["api.example"]
origin = "https://api-origin.example"
typo = 1
"#;
        assert_errors(
            text,
            &[
                (
                    "node.colour",
                    "unknown field `colour`, expected one of `name`, `role`, `pop`, `region` (line 4, column 1)",
                ),
                ("listen.admin", "\"localhost:9090\" is not an IP address and port; write e.g."),
                ("cache.memory", "\"lots\" does not start with a number; write a whole number"),
                ("cache.disk", "negative size -5"),
                ("limits.max_headers", "invalid type: string \"100\", expected a whole number"),
                ("services[0].origin", "unsupported scheme \"ftp\"; use http or https (line 20"),
                ("services[0].default_ttl", "write \"60s\""),
                ("services[1].hosts", "missing required field `hosts` in the table at line 23"),
                ("services[2].typo", "unknown field `typo`, expected one of `name`, `hosts`"),
            ],
        );
    }

    #[test]
    fn error_paths_for_each_way_of_writing_tables() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("[listen]\nhttp = \"127.0.0.1:0\"\n", &[("node", "missing required field `node`")]),
            ("[node]\nname = 5\n", &[("node.name", "expected a string (line 2, column 8)")]),
            (
                "node = { name = \"x\", extra = 1 }\n\
                 services = [ { name = \"a\", hosts = [1], origin = \"http://a\" }, { name = \"b\" } ]\n",
                &[
                    ("node.extra", "unknown field `extra`"),
                    ("services[0].hosts[0]", "invalid type: integer `1`, expected a string"),
                    ("services[1].hosts", "missing required field `hosts`"),
                ],
            ),
            ("services = 5\n[node]\nname = \"a\"\n", &[("services", "expected an array")]),
            ("node = 5\n", &[("node", "invalid type: integer `5`, expected a table")]),
            (
                "[node]\nname = \"a\"\n[tls]\n[[tls.certificates]]\nhosts = [\"a\"]\n",
                &[("tls.certificates[0].cert", "missing required field `cert`")],
            ),
            (
                "[node]\nname = \"a\"\n[[tls.certificates]]\nhosts = [\"a\"]\ncert = \"c\"\nkey = \"k\"\n\
                 [[tls.certificates]]\nhosts = [\"*\"]\ncert = \"c\"\nkey = \"k\"\n",
                &[("tls.certificates[1].hosts", "\"*\" alone is not a host pattern")],
            ),
            (
                "[node]\nname = \"a\"\n[cache]\nmemory = \"1GiB\"\nheuristic_fraction = \"10%\"\nbogus = 1\n",
                &[
                    ("cache.heuristic_fraction", "expected a number such as 0.1"),
                    ("cache.bogus", "unknown field `bogus`"),
                ],
            ),
            (
                "[node]\nname = \"a\"\n[[services]]\nname = \"s\"\nhosts = [\"s.example\"]\n\
                 origin = \"http://o\"\norigin_protocol = \"h2\"\nhost_header = \"a b\"\n",
                &[
                    ("services[0].origin_protocol", "unknown variant `h2`, expected one of `auto`, `http1`, `http2`"),
                    ("services[0].host_header", "use \"keep\", \"origin\" or a host"),
                ],
            ),
            ("[node]\nname = \"a\"\n[log]\naccess = \"\"\n", &[("log.access", "empty access log")]),
            (
                "[node]\nname = \"a\"\n[log]\naccess_format = \"xml\"\n",
                &[("log.access_format", "unknown variant `xml`, expected `json` or `combined`")],
            ),
        ];
        for (text, expected) in cases {
            assert_errors(text, expected);
        }
    }

    #[test]
    fn syntax_errors_are_all_reported_with_their_position() {
        assert_errors(
            "[node\nname = 1\nfoo = = 2\n",
            &[
                ("(line 1, column 6)", "invalid TOML: unclosed table, expected `]`"),
                ("(line 3, column 7)", "invalid TOML: extra `=`"),
                ("(line 3, column 9)", "invalid TOML: unexpected key or value"),
            ],
        );
        assert_errors(
            "[node]\nname = \"a\"\n[node]\nname = \"b\"\n",
            &[
                ("(line 3, column 2)", "invalid TOML: duplicate key"),
                ("(line 4, column 1)", "invalid TOML: duplicate key"),
            ],
        );
    }

    #[test]
    fn rust_type_names_become_toml_words() {
        let cases = [
            ("invalid type: string \"1\", expected u32", "invalid type: string \"1\", expected a whole number"),
            ("invalid type: integer `5`, expected struct NodeSection", "invalid type: integer `5`, expected a table"),
            ("expected struct A or expected struct B_c", "expected a table or expected a table"),
            ("invalid type: map, expected a sequence", "invalid type: map, expected an array"),
        ];
        for (message, plain) in cases {
            assert_eq!(plain_types(message), plain);
        }
    }

    #[test]
    fn missing_field_names() {
        assert_eq!(missing_field("missing field `name`"), Some("name"));
        assert_eq!(missing_field("unknown field `name`"), None);
    }
}
