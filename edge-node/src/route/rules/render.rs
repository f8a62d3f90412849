//! Templates rendered for one request: header values and redirect targets.

use std::fmt::Write as _;
use std::net::IpAddr;

use outpost_config::rules::{Piece, Template};

use super::matcher::query_param;

/// What a template's variables stand for in this request.
pub struct Vars<'a> {
    pub host: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub client_ip: IpAddr,
    pub tls: bool,
}

pub fn render(template: &Template, v: &Vars<'_>) -> String {
    let mut out = String::with_capacity(template.as_str().len() + v.host.len() + v.path.len());
    for piece in template.pieces() {
        match piece {
            Piece::Literal(s) => out.push_str(s),
            Piece::Host => out.push_str(v.host),
            Piece::Path => out.push_str(v.path),
            Piece::Query => out.push_str(v.query.unwrap_or("")),
            Piece::QueryParam(name) => out.push_str(v.query.and_then(|q| query_param(q, name)).unwrap_or("")),
            Piece::ClientIp => {
                let _ = write!(out, "{}", v.client_ip.to_canonical());
            }
            Piece::Scheme => out.push_str(if v.tls { "https" } else { "http" }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_renders() {
        let v = Vars {
            host: "shop.example",
            path: "/a/b",
            query: Some("x=1&lang=de"),
            client_ip: "::ffff:192.0.2.7".parse().unwrap_or_else(|_| unreachable!()),
            tls: false,
        };
        let cases = [
            ("{scheme}://{host}{path}?{query}", "http://shop.example/a/b?x=1&lang=de"),
            ("lang={query.lang}; missing={query.nope}", "lang=de; missing="),
            ("ip {client_ip}", "ip 192.0.2.7"),
            ("plain", "plain"),
        ];
        for (source, want) in cases {
            let t = Template::parse(source).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(render(&t, &v), want, "{source}");
        }
    }
}
