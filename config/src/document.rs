//! TOML text → [`NodeConfig`], reporting every syntax and type error with its field path.
//!
//! serde stops at the first error. To report them all, the document is parsed once into a
//! spanned tree; after each error the entry that caused it is removed from a working copy and
//! deserialization runs again. Each error's span is then looked up in the original tree to
//! name its field path (`services[1].origin`), with indices as the user wrote them.

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::ConfigError;
use crate::node::NodeConfig;

/// Upper bound on deserialization rounds; each round removes one entry, so a document with
/// fewer entries than this ends sooner.
const MAX_ROUNDS: usize = 1000;

type Doc<'i> = Spanned<DeTable<'i>>;

/// Parses and deserializes `text`; on failure returns every error found, in file order.
pub(crate) fn from_toml(text: &str, file: &Path) -> Result<NodeConfig, Vec<ConfigError>> {
    let (doc, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        return Err(syntax_errors
            .iter()
            .map(|e| {
                let position = e.span().map(|s| position(text, s.start));
                let path = position.map_or_else(|| "(unknown position)".to_owned(), |p| p.to_string());
                ConfigError::new(file, path, format!("invalid TOML: {}", e.message()))
            })
            .collect());
    }
    let mut work = doc.clone();
    // (table span, key) of every entry removed from `work`, to recognise the "missing field"
    // errors that the removal itself causes.
    let mut removed: Vec<(Range<usize>, String)> = Vec::new();
    let mut found: Vec<(usize, ConfigError)> = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let error = match NodeConfig::deserialize(toml::de::Deserializer::from(work.clone())) {
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
                let path = join(table.as_deref().unwrap_or(""), field);
                let message = format!("missing required field `{field}` (table at {at})");
                found.push((span.start, ConfigError::new(file, path, message)));
            }
            // serde checks missing fields last, so the rest of this table was fine: drop it
            // and go on with its siblings. The root cannot be dropped, and nothing is left.
            if table.is_none_or(|path| path.is_empty()) || !remove_table(&mut work, &span) {
                break;
            }
        } else {
            let path = find_path(&doc, &span).unwrap_or_else(|| at.to_string());
            let message = format!("{} ({at})", error.message());
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
    Position {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

/// The field named by serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.strip_suffix('`')
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
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
        DeValue::Array(array) => array
            .iter()
            .enumerate()
            .find_map(|(i, item)| find_in_value(item, &format!("{path}[{i}]"), span)),
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
            DeValue::Array(array) => array
                .iter()
                .enumerate()
                .find_map(|(i, item)| in_value(item, &format!("{path}[{i}]"), span)),
            _ => None,
        };
        let exact = value.get_ref().is_table() && value.span() == *span;
        deeper.or_else(|| exact.then(|| path.to_owned()))
    }
    fn in_table(table: &DeTable<'_>, path: &str, span: &Range<usize>) -> Option<String> {
        table
            .iter()
            .find_map(|(key, value)| in_value(value, &join(path, key.get_ref()), span))
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

fn remove_entry_in_value(
    value: &mut Spanned<DeValue<'_>>,
    span: &Range<usize>,
) -> Option<(Range<usize>, String)> {
    let value_span = value.span();
    match value.get_mut() {
        DeValue::Table(table) => remove_entry_in_table(table, value_span, span),
        DeValue::Array(array) => array
            .iter_mut()
            .find_map(|item| remove_entry_in_value(item, span)),
        _ => None,
    }
}

/// Removes the deepest table whose span is exactly `span`, from the table or array holding
/// it. Returns whether one was removed.
fn remove_table(doc: &mut Doc<'_>, span: &Range<usize>) -> bool {
    fn in_table(table: &mut DeTable<'_>, span: &Range<usize>) -> bool {
        let mut hit = None;
        for (key, value) in table.iter_mut() {
            if in_value(value, span) {
                return true;
            }
            if value.get_ref().is_table() && value.span() == *span {
                hit = Some(key.get_ref().to_string());
                break;
            }
        }
        hit.is_some_and(|key| table.remove(key.as_str()).is_some())
    }
    fn in_value(value: &mut Spanned<DeValue<'_>>, span: &Range<usize>) -> bool {
        match value.get_mut() {
            DeValue::Table(table) => in_table(table, span),
            DeValue::Array(array) => {
                if array.iter_mut().any(|item| in_value(item, span)) {
                    return true;
                }
                let Some(index) = array
                    .iter()
                    .position(|item| item.get_ref().is_table() && item.span() == *span)
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
    in_table(doc.get_mut(), span)
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

    #[test]
    fn missing_field_names() {
        assert_eq!(missing_field("missing field `name`"), Some("name"));
        assert_eq!(missing_field("unknown field `name`"), None);
    }
}
