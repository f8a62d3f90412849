//! Templates for header values and redirect targets: literal text with variables in braces,
//! parsed once when the config is read. Variables: `{host}` (the request's host, lower-case,
//! no port), `{path}` (path only), `{query}` (the query string without `?`, empty when none),
//! `{query.NAME}` (the first value of parameter NAME as sent, empty when absent),
//! `{client_ip}`, `{scheme}` (`http` or `https`). Literal text may not hold control characters:
//! a rule can never write CR or LF into a header (header injection) or a `Location`.

use std::fmt;

/// The longest template accepted, in bytes.
pub const MAX_TEMPLATE_LEN: usize = 2048;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Literal(String),
    Host,
    Path,
    Query,
    QueryParam(String),
    ClientIp,
    Scheme,
}

/// A parsed template.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
}

const VARIABLES: &str = "{host}, {path}, {query}, {query.NAME}, {client_ip}, {scheme}";

impl Template {
    pub fn parse(source: &str) -> Result<Self, String> {
        if source.len() > MAX_TEMPLATE_LEN {
            return Err(format!("{} bytes; write at most {MAX_TEMPLATE_LEN}", source.len()));
        }
        if let Some(c) = source.chars().find(|c| c.is_control() && *c != '\t') {
            return Err(format!("control character {c:?} (CR and LF would inject header lines); remove it"));
        }
        let mut pieces = Vec::new();
        let mut rest = source;
        while !rest.is_empty() {
            let Some(open) = rest.find(['{', '}']) else {
                pieces.push(Piece::Literal(rest.to_owned()));
                break;
            };
            if open > 0 {
                pieces.push(Piece::Literal(rest[..open].to_owned()));
            }
            if rest[open..].starts_with('}') {
                return Err(format!("{source:?}: '}}' without '{{'; variables are {VARIABLES}"));
            }
            let Some(close) = rest[open..].find('}') else {
                return Err(format!("{source:?}: '{{' without '}}'; variables are {VARIABLES}"));
            };
            pieces.push(variable(&rest[open + 1..open + close], source)?);
            rest = &rest[open + close + 1..];
        }
        Ok(Self { source: source.to_owned(), pieces })
    }

    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The literal text before the first variable (where a redirect's scheme and host sit).
    pub fn literal_prefix(&self) -> &str {
        match self.pieces.first() {
            Some(Piece::Literal(s)) => s,
            _ => "",
        }
    }
}

fn variable(name: &str, source: &str) -> Result<Piece, String> {
    Ok(match name {
        "host" => Piece::Host,
        "path" => Piece::Path,
        "query" => Piece::Query,
        "client_ip" => Piece::ClientIp,
        "scheme" => Piece::Scheme,
        _ => match name.strip_prefix("query.") {
            Some(param) if !param.is_empty() && !param.contains(['&', '=', '{', ' ']) => {
                Piece::QueryParam(param.to_owned())
            }
            _ => return Err(format!("{source:?}: unknown variable {{{name}}}; use {VARIABLES}")),
        },
    })
}

impl TryFrom<String> for Template {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({:?})", self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_into_pieces_or_say_why_not() {
        let lit = |s: &str| Piece::Literal(s.to_owned());
        let cases: &[(&str, Result<Vec<Piece>, &str>)] = &[
            ("plain", Ok(vec![lit("plain")])),
            ("", Ok(vec![])),
            ("https://{host}{path}", Ok(vec![lit("https://"), Piece::Host, Piece::Path])),
            (
                "v={query.v}&ip={client_ip}",
                Ok(vec![lit("v="), Piece::QueryParam("v".into()), lit("&ip="), Piece::ClientIp]),
            ),
            ("{scheme}{query}", Ok(vec![Piece::Scheme, Piece::Query])),
            ("a\r\nSet-Cookie: x=1", Err("control character")),
            ("{nope}", Err("unknown variable {nope}")),
            ("{query.}", Err("unknown variable")),
            ("{host", Err("'{' without '}'")),
            ("host}", Err("'}' without '{'")),
        ];
        for (source, want) in cases {
            match (Template::parse(source), want) {
                (Ok(t), Ok(pieces)) => assert_eq!(t.pieces(), pieces.as_slice(), "{source}"),
                (Err(e), Err(fragment)) => assert!(e.contains(fragment), "{source}: {e}"),
                (got, _) => panic!("{source}: got {got:?}, expected {want:?}"),
            }
        }
        assert!(Template::parse(&"x".repeat(MAX_TEMPLATE_LEN + 1)).is_err());
    }
}
