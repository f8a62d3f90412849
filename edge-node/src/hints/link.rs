//! Just enough of the `Link` field (RFC 8288 §3) to pick the links worth an early hint: split
//! a field value into its link-values, read each one's `rel`, keep `preload` (W3C Preload) and
//! `preconnect` (W3C Resource Hints). Hostile input is skipped, never a panic.

use http::header::LINK;
use http::{HeaderMap, HeaderValue};

/// Relation types a `103 Early Hints` is for: a browser acts on these before the page arrives.
const HINT_RELATIONS: [&str; 2] = ["preload", "preconnect"];

/// The link-values of one `Link` field value. RFC 8288 §3: `Link = #link-value`, so values are
/// comma-separated, but a comma inside the `<URI-Reference>` or a quoted-string parameter is
/// part of the value. Empty elements (RFC 9110 §5.6.1) are skipped.
pub fn split_values(field: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut in_uri, mut in_quote, mut escaped) = (0, false, false, false);
    for (i, b) in field.bytes().enumerate() {
        if in_quote {
            // RFC 9110 §5.6.4: a backslash quotes the next octet inside a quoted-string.
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_quote = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'<' if !in_uri => in_uri = true,
            b'>' if in_uri => in_uri = false,
            b'"' if !in_uri => in_quote = true,
            b',' if !in_uri => {
                push_trimmed(&mut out, &field[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    push_trimmed(&mut out, &field[start..]);
    out
}

fn push_trimmed<'a>(out: &mut Vec<&'a str>, piece: &'a str) {
    let piece = piece.trim_matches([' ', '\t']);
    if !piece.is_empty() {
        out.push(piece);
    }
}

/// The `rel` parameter of one link-value, unquoted; `None` when the value is not
/// `<URI-Reference> *( OWS ";" OWS link-param )` or has no `rel`. RFC 8288 §3.3: occurrences
/// of `rel` after the first are ignored.
pub fn rel(link_value: &str) -> Option<String> {
    let rest = link_value.strip_prefix('<')?;
    let close = rest.find('>')?;
    for param in split_params(&rest[close + 1..]) {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        if name.trim_matches([' ', '\t']).eq_ignore_ascii_case("rel") {
            return Some(unquote(value.trim_matches([' ', '\t'])));
        }
    }
    None
}

/// The `;`-separated parameters after the target, a `;` inside a quoted-string kept.
fn split_params(params: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut in_quote, mut escaped) = (0, false, false);
    for (i, b) in params.bytes().enumerate() {
        match (in_quote, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => in_quote = false,
            (false, _, b'"') => in_quote = true,
            (false, _, b';') => {
                push_trimmed(&mut out, &params[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    push_trimmed(&mut out, &params[start..]);
    out
}

/// A token as is; a quoted-string without its quotes and escapes (RFC 9110 §5.6.4).
fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"') else { return value.to_string() };
    let inner = inner.strip_suffix('"').unwrap_or(inner);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// Whether the link-value is worth an early hint: its `rel` (a space-separated list of
/// relation types, compared case-insensitively, RFC 8288 §3.3 and §2.1.1) names `preload` or
/// `preconnect`.
pub fn is_hint(link_value: &str) -> bool {
    rel(link_value)
        .is_some_and(|rel| rel.split([' ', '\t']).any(|t| HINT_RELATIONS.iter().any(|h| t.eq_ignore_ascii_case(h))))
}

/// The hint-worthy link-values of `headers`' `Link` fields, in order, one per value, at most
/// `max_links` of them and `max_bytes` in all (a value that would cross the byte bound is left
/// out). Field values that are not visible ASCII are skipped.
pub fn hint_links(headers: &HeaderMap, max_links: usize, max_bytes: usize) -> Vec<HeaderValue> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for field in headers.get_all(LINK) {
        let Ok(field) = field.to_str() else { continue };
        for value in split_values(field).into_iter().filter(|v| is_hint(v)) {
            if out.len() >= max_links {
                return out;
            }
            if bytes.saturating_add(value.len()) > max_bytes {
                continue;
            }
            if let Ok(v) = HeaderValue::from_str(value) {
                bytes += value.len();
                out.push(v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_values_split_where_rfc_8288_says() {
        let cases: &[(&str, &[&str])] = &[
            // RFC 8288 §3: Link = #link-value.
            ("</a.css>; rel=preload, </b.js>; rel=preload", &["</a.css>; rel=preload", "</b.js>; rel=preload"]),
            // §3: the target is a URI-Reference inside <>; a comma there is not a separator.
            ("</a,b.css>; rel=preload", &["</a,b.css>; rel=preload"]),
            // RFC 9110 §5.6.4: nor is one inside a quoted-string, escapes included.
            (r#"</a>; title="x, \"y\", z"; rel=preload"#, &[r#"</a>; title="x, \"y\", z"; rel=preload"#]),
            // RFC 9110 §5.6.1: empty list elements are ignored.
            (" , </a>; rel=preload ,, ", &["</a>; rel=preload"]),
            ("", &[]),
        ];
        for (field, want) in cases {
            assert_eq!(split_values(field), *want, "{field}");
        }
    }

    #[test]
    fn rel_is_read_as_rfc_8288_says() {
        let cases: &[(&str, Option<&str>, bool)] = &[
            ("</a.css>; rel=preload; as=style", Some("preload"), true),
            // §3.3: the value may be a quoted list of relation types.
            (r#"<https://cdn.example>; rel="dns-prefetch preconnect""#, Some("dns-prefetch preconnect"), true),
            // §2.1.1: registered relation types compare case-insensitively; BWS around "=".
            ("</a>;REL = PreLoad", Some("PreLoad"), true),
            // §3.3: a rel after the first is ignored.
            ("</a>; rel=stylesheet; rel=preload", Some("stylesheet"), false),
            ("</a>; rel=prefetch", Some("prefetch"), false),
            ("</a>; rel=\"preloadx\"", Some("preloadx"), false),
            // Not a link-value: no <target>, or no rel at all.
            ("/a; rel=preload", None, false),
            ("</a; rel=preload", None, false),
            ("</a>", None, false),
            // A ';' inside a quoted parameter does not start a parameter.
            (r#"</a>; title="x; rel=preload"; rel=next"#, Some("next"), false),
        ];
        for (value, want_rel, hint) in cases {
            assert_eq!(rel(value).as_deref(), *want_rel, "{value}");
            assert_eq!(is_hint(value), *hint, "{value}");
        }
    }

    #[test]
    fn hint_links_are_bounded_in_count_and_bytes() {
        let mut h = HeaderMap::new();
        h.append(LINK, HeaderValue::from_static("</a.css>; rel=preload; as=style, </next>; rel=next"));
        h.append(LINK, HeaderValue::from_static("<https://fonts.example>; rel=preconnect"));
        h.append(LINK, HeaderValue::from_static("</b.js>; rel=preload; as=script"));
        let all: Vec<_> = hint_links(&h, 16, 4096).iter().map(|v| v.to_str().unwrap_or("?").to_string()).collect();
        assert_eq!(
            all,
            [
                "</a.css>; rel=preload; as=style",
                "<https://fonts.example>; rel=preconnect",
                "</b.js>; rel=preload; as=script"
            ]
        );
        assert_eq!(hint_links(&h, 2, 4096).len(), 2);
        // A value that would cross the byte bound is left out; a shorter one after it still fits.
        let short = hint_links(&h, 16, "</a.css>; rel=preload; as=style".len() + 31);
        assert_eq!(short.len(), 2, "{short:?}");
        assert_eq!(short[1], "</b.js>; rel=preload; as=script");
        assert!(hint_links(&h, 0, 4096).is_empty());
    }

    #[test]
    fn hostile_input_never_panics() {
        for field in [
            "<",
            ">",
            "\"",
            "<\"",
            "\"<",
            "\\",
            "<>;",
            "<>;rel",
            "<>;rel=\"",
            "<>;rel=\"\\",
            ",,,",
            ";;;",
            "<ü>; rel=preload",
        ] {
            let values = split_values(field);
            for v in values {
                let _ = rel(v);
                let _ = is_hint(v);
            }
        }
    }
}
