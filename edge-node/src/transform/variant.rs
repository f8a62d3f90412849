//! What a variant says of itself: its entity tag. Where variants are stored, looked up and
//! made once is the cache's ([`crate::cache::variants`]).

use http::HeaderValue;

/// The entity tag of a variant: the base's with the descriptor's tag appended inside the quotes
/// (`"abc"` → `"abc-br"`), so caches and conditionals tell variants apart (RFC 9110 §8.8.3);
/// a weak tag stays weak.
pub fn etag(base: &HeaderValue, suffix: &str) -> Option<HeaderValue> {
    let text = base.to_str().ok()?;
    let (weak, quoted) = match text.strip_prefix("W/") {
        Some(rest) => ("W/", rest),
        None => ("", text),
    };
    let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
    HeaderValue::from_str(&format!("{weak}\"{inner}-{suffix}\"")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_get_the_suffix_inside_the_quotes() {
        let cases = [("\"abc\"", Some("\"abc-br\"")), ("W/\"abc\"", Some("W/\"abc-br\"")), ("abc", None)];
        for (base, want) in cases {
            let got = etag(&HeaderValue::from_static(base), "br");
            assert_eq!(got.as_ref().and_then(|v| v.to_str().ok()), want, "{base}");
        }
    }
}
