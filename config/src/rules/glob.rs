//! Globs for rule conditions and cache-key query filters: `*` matches any run of characters
//! (`/` included, so `/static/*` is a prefix match), `?` exactly one; everything else matches
//! itself. Matching is linear-time backtracking over bytes and allocates nothing.

use std::fmt;

/// The longest glob accepted, in bytes.
pub const MAX_GLOB_LEN: usize = 256;

/// A glob, checked when the config is read.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Glob(String);

impl Glob {
    /// `pattern` as a glob: up to 256 bytes, no control characters. The empty glob matches
    /// the empty string only (a bare `?flag` parameter's value).
    pub fn new(pattern: impl Into<String>) -> Result<Self, String> {
        let pattern = pattern.into();
        if pattern.len() > MAX_GLOB_LEN {
            return Err(format!(
                "{} bytes; write at most {MAX_GLOB_LEN}, e.g. \"/static/*\" or \"utm_*\"",
                pattern.len()
            ));
        }
        if let Some(c) = pattern.chars().find(|c| c.is_control()) {
            return Err(format!("{pattern:?}: control character {c:?}; globs match text, use * and ?"));
        }
        Ok(Self(pattern))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same glob lower-cased (host globs: hosts are compared lower-case).
    pub fn to_lowercase(&self) -> Self {
        Self(self.0.to_ascii_lowercase())
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        matches(self.0.as_bytes(), text.as_bytes())
    }

    /// Whether the pattern has no `*` or `?` (a plain string compare).
    pub fn is_literal(&self) -> bool {
        !self.0.contains(['*', '?'])
    }
}

impl TryFrom<String> for Glob {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Self::new(s)
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.0)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The classic two-pointer wildcard match: on a mismatch, go back to just after the last `*`
/// and let it swallow one more byte. O(pattern × text) at worst, no recursion, no allocation.
fn matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_strings() {
        let cases: &[(&str, &str, bool)] = &[
            ("/static/*", "/static/app.js", true),
            ("/static/*", "/static/", true),
            ("/static/*", "/static", false),
            ("/static/*", "/img/static/a", false),
            ("*.css", "/a/b/c.css", true),
            ("*.css", "/a/b/c.css.map", false),
            ("utm_*", "utm_source", true),
            ("utm_*", "xutm_source", false),
            ("fbclid", "fbclid", true),
            ("fbclid", "fbclid2", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*", "", true),
            ("**", "anything", true),
            ("*a*b*c*", "xxaxxbxxcxx", true),
            ("*a*b*c*", "xxaxxcxxbxx", false),
            ("/api/*/users", "/api/v1/users", true),
            ("/api/*/users", "/api/v1/users/2", false),
        ];
        for (pattern, text, want) in cases {
            let glob = Glob::new(*pattern).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(glob.matches(text), *want, "{pattern} ~ {text}");
        }
    }

    #[test]
    fn a_pathological_pattern_stays_linear_enough() {
        let glob = Glob::new("*a*a*a*a*a*a*a*b").unwrap_or_else(|e| panic!("{e}"));
        let text = "a".repeat(10_000);
        assert!(!glob.matches(&text));
    }

    #[test]
    fn bad_globs_are_refused() {
        assert!(Glob::new("").is_ok_and(|g| g.matches("") && !g.matches("a")));
        assert!(Glob::new("x".repeat(MAX_GLOB_LEN + 1)).is_err());
        assert!(Glob::new("a\nb").is_err());
    }
}
