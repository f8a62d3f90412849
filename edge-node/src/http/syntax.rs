//! Shared field-value syntax (RFC 9110 §5.6): comma lists, quoted strings, delta-seconds.
//! Every function here is total: hostile input yields "absent" or "invalid", never a panic.

use std::time::Duration;

/// RFC 9111 §1.2.2: a delta-seconds value too large to represent is treated as 2^31 seconds.
pub(crate) const DELTA_SECONDS_CAP: u64 = 1 << 31;

/// Splits a list field value on commas that are outside quoted strings (RFC 9110 §5.6.1),
/// trims optional whitespace and drops empty elements (which recipients must accept).
pub(crate) fn split_list(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
        } else if c == '"' {
            in_quotes = true;
        } else if c == ',' {
            push_trimmed(&mut out, s.get(start..i).unwrap_or(""));
            start = i + 1;
        }
    }
    push_trimmed(&mut out, s.get(start..).unwrap_or(""));
    out
}

fn push_trimmed<'a>(out: &mut Vec<&'a str>, item: &'a str) {
    let item = item.trim_matches([' ', '\t']);
    if !item.is_empty() {
        out.push(item);
    }
}

/// Removes the quotes and backslash escapes of a quoted-string (RFC 9110 §5.6.4);
/// a token is returned as is.
pub(crate) fn unquote(s: &str) -> String {
    let Some(inner) = s.strip_prefix('"') else {
        return s.to_string();
    };
    let inner = inner.strip_suffix('"').unwrap_or(inner);
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if escaped || c != '\\' {
            out.push(c);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    out
}

/// delta-seconds = 1*DIGIT (RFC 9111 §1.2.2), saturating at 2^31. `None` when invalid
/// ("", "-1", "1.5", "abc").
pub(crate) fn delta_seconds(s: &str) -> Option<Duration> {
    let s = s.trim_matches([' ', '\t']);
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs = s
        .bytes()
        .fold(0u64, |acc, b| acc.saturating_mul(10).saturating_add(u64::from(b - b'0')).min(DELTA_SECONDS_CAP));
    Some(Duration::from_secs(secs))
}

/// Field value as text. Non-UTF-8 bytes (obs-text) become U+FFFD, which never matches a token.
pub(crate) fn text(v: &http::HeaderValue) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(v.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_and_delta_seconds() {
        assert_eq!(split_list(r#" a, "b,c" ,, d=\"x "#), vec!["a", r#""b,c""#, r#"d=\"x"#]);
        assert_eq!(unquote(r#""a\"b""#), r#"a"b"#);
        assert_eq!(delta_seconds("60"), Some(Duration::from_secs(60)));
        assert_eq!(delta_seconds("99999999999999999999999"), Some(Duration::from_secs(DELTA_SECONDS_CAP)));
        for bad in ["", "-1", "1.5", "abc", "+1", "1 2"] {
            assert_eq!(delta_seconds(bad), None, "{bad}");
        }
    }
}
