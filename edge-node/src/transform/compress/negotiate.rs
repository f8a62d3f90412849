//! Content negotiation by `Accept-Encoding` (RFC 9110 §12.5.3).

use http::header::{ACCEPT_ENCODING, HeaderMap};

use super::coding::Coding;

/// A q-value in thousandths: 0 (refused) to 1000 (RFC 9110 §12.4.2).
type Weight = u16;

/// The coding to send: among `prefer` (the service's codings, most preferred first) and
/// identity, the one the client accepts with the highest q-value.
///
/// - No `Accept-Encoding` field: identity. RFC 9110 §12.5.3 would allow any coding, but
///   clients that decode send the field, and an old client without it may not.
/// - A coding is accepted with its own q-value, else with the q-value of `*`, else not at all;
///   `q=0` refuses it. A q-value that is not valid (`q=2`, `q=high`) voids its element.
/// - Highest q-value wins; ties go to the earlier coding in `prefer`, and any coding wins a
///   tie with identity.
/// - Identity is acceptable unless refused by `identity;q=0`, or by `*;q=0` without an
///   `identity` element (RFC 9110 §12.5.3); it is chosen over the codings only when listed
///   with a higher q-value than every accepted coding. When nothing is acceptable, identity is
///   returned too: the response goes out unencoded rather than as a 406/415.
/// - A coding listed twice counts once, with its first q-value (as nginx reads it).
/// - Every `Accept-Encoding` line counts, as if joined with commas (RFC 9110 §5.3).
pub fn choose(headers: &HeaderMap, prefer: &[Coding]) -> Coding {
    let mut fields = headers.get_all(ACCEPT_ENCODING).iter().peekable();
    if fields.peek().is_none() {
        return Coding::Identity;
    }
    let mut listed = Listed::default();
    for field in fields {
        // A value that is not visible ASCII is skipped as a whole.
        let Ok(text) = field.to_str() else { continue };
        for element in text.split(',') {
            if let Some((token, weight)) = parse_element(element) {
                listed.record(token, weight);
            }
        }
    }
    let mut best: Option<(Coding, Weight)> = None;
    for &coding in prefer {
        if coding == Coding::Identity {
            continue;
        }
        let weight = listed.weight(coding).or(listed.star).unwrap_or(0);
        if weight > 0 && best.is_none_or(|(_, best_weight)| weight > best_weight) {
            best = Some((coding, weight));
        }
    }
    match (best, listed.identity) {
        (Some((_, weight)), Some(identity)) if identity > weight => Coding::Identity,
        (Some((coding, _)), _) => coding,
        (None, _) => Coding::Identity,
    }
}

/// First q-value seen for each token the node knows.
#[derive(Default)]
struct Listed {
    br: Option<Weight>,
    zstd: Option<Weight>,
    gzip: Option<Weight>,
    identity: Option<Weight>,
    star: Option<Weight>,
}

impl Listed {
    fn record(&mut self, token: &str, weight: Weight) {
        let slot = if token == "*" {
            &mut self.star
        } else {
            match Coding::parse(token) {
                Some(Coding::Br) => &mut self.br,
                Some(Coding::Zstd) => &mut self.zstd,
                Some(Coding::Gzip) => &mut self.gzip,
                Some(Coding::Identity) => &mut self.identity,
                None => return,
            }
        };
        slot.get_or_insert(weight);
    }

    fn weight(&self, coding: Coding) -> Option<Weight> {
        match coding {
            Coding::Br => self.br,
            Coding::Zstd => self.zstd,
            Coding::Gzip => self.gzip,
            Coding::Identity => self.identity,
        }
    }
}

/// `codings [ weight ]` (RFC 9110 §12.5.3): the token and its q-value, 1 when absent. `None`
/// for an empty element (the `#rule` allows them) or an invalid q-value. Parameters other than
/// `q` are not in the grammar; they are ignored.
fn parse_element(element: &str) -> Option<(&str, Weight)> {
    let mut parts = element.split(';').map(|part| part.trim_matches([' ', '\t']));
    let token = parts.next().filter(|token| !token.is_empty())?;
    let mut weight = 1000;
    for parameter in parts {
        let Some((name, value)) = parameter.split_once('=') else { continue };
        if name.trim_end_matches([' ', '\t']).eq_ignore_ascii_case("q") {
            weight = parse_qvalue(value.trim_start_matches([' ', '\t']))?;
        }
    }
    Some((token, weight))
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` (RFC 9110 §12.4.2).
fn parse_qvalue(text: &str) -> Option<Weight> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths =
        fraction.bytes().chain(std::iter::repeat(b'0')).take(3).fold(0, |n, b| n * 10 + Weight::from(b - b'0'));
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;
    use Coding::{Br, Gzip, Identity, Zstd};

    const ALL: &[Coding] = &[Br, Zstd, Gzip];

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(ACCEPT_ENCODING, HeaderValue::from_str(line).expect("valid header"));
        }
        headers
    }

    #[test]
    fn chooses_by_q_value_then_preference() {
        // (Accept-Encoding lines, service preference, expected); the clause is RFC 9110 §12.5.3
        // unless a row says otherwise.
        let cases: &[(&[&str], &[Coding], Coding)] = &[
            // No field: identity (the RFC would allow anything; clients that decode send it).
            (&[], ALL, Identity),
            // An empty field: only identity is acceptable.
            (&[""], ALL, Identity),
            (&["gzip"], ALL, Gzip),
            (&["gzip, deflate, br"], ALL, Br),
            (&["gzip, deflate, br, zstd"], ALL, Br),
            (&["gzip, deflate, br, zstd"], &[Zstd, Br, Gzip], Zstd),
            (&["gzip, deflate, br, zstd"], &[Gzip], Gzip),
            // A coding the service does not produce is never chosen.
            (&["br"], &[Gzip], Identity),
            (&["br"], &[], Identity),
            // Highest q wins over preference.
            (&["br;q=0.5, gzip"], ALL, Gzip),
            (&["br;q=0.5, gzip;q=0.6, zstd;q=0.599"], ALL, Gzip),
            (&["br;q=0.001, gzip;q=0"], ALL, Br),
            // Ties go to the service's order.
            (&["gzip;q=0.8, br;q=0.8"], ALL, Br),
            (&["gzip;q=0.8, br;q=0.8"], &[Gzip, Br], Gzip),
            // q=0 refuses (§12.4.2).
            (&["br;q=0"], ALL, Identity),
            (&["br;q=0, gzip"], ALL, Gzip),
            (&["br;q=0.0, gzip;q=0.000, zstd;q=0."], ALL, Identity),
            // `*` matches codings not listed.
            (&["*"], ALL, Br),
            (&["*"], &[Gzip, Br], Gzip),
            (&["br;q=0, *"], ALL, Zstd),
            (&["*;q=0.5, gzip"], ALL, Gzip),
            (&["*;q=0.5, gzip;q=0.4"], ALL, Br),
            (&["*;q=0"], ALL, Identity),
            (&["*;q=0, gzip"], ALL, Gzip),
            // identity: chosen only when it outranks every accepted coding.
            (&["identity"], ALL, Identity),
            (&["gzip, identity"], ALL, Gzip),
            (&["gzip;q=0.5, identity"], ALL, Identity),
            (&["gzip;q=0.5, identity;q=0.5"], ALL, Gzip),
            (&["identity;q=0"], ALL, Identity),
            (&["identity;q=0, gzip"], ALL, Gzip),
            (&["identity;q=0, *;q=0"], ALL, Identity),
            // Case-insensitive tokens and parameter names (§8.4.1, §12.4.2).
            (&["GZIP"], ALL, Gzip),
            (&["Br;Q=1"], ALL, Br),
            (&["BR;Q=0, gzip"], ALL, Gzip),
            // x-gzip is gzip (§8.4.1.3).
            (&["x-gzip"], ALL, Gzip),
            (&["x-gzip;q=0.9, br;q=0.8"], ALL, Gzip),
            // Whitespace: OWS around commas and semicolons, tabs included (§5.6.3).
            (&["  gzip ;  q=0.5 ,\tbr\t;\tq=0.9 "], ALL, Br),
            (&["gzip ; q = 0.5, br;q=0.4"], ALL, Gzip),
            // Empty elements are allowed by the #rule (§5.6.1).
            (&[",, ,gzip,,"], ALL, Gzip),
            // Invalid q-values void their element.
            (&["br;q=2, gzip"], ALL, Gzip),
            (&["br;q=high, gzip;q=0.5"], ALL, Gzip),
            (&["br;q=-1"], ALL, Identity),
            (&["br;q=0.1234, gzip;q=0.1"], ALL, Gzip),
            (&["br;q=1.001, gzip;q=0.1"], ALL, Gzip),
            (&["br;q=, gzip;q=0.1"], ALL, Gzip),
            (&["br;q=.5, gzip;q=0.1"], ALL, Gzip),
            (&["br;q=1.000"], ALL, Br),
            (&["br;q=1."], ALL, Br),
            // Other parameters are ignored.
            (&["br;level=5"], ALL, Br),
            (&["br;foo"], ALL, Br),
            // Duplicates: the first counts.
            (&["br;q=0, br"], ALL, Identity),
            (&["br, br;q=0"], ALL, Br),
            (&["gzip;q=0.1, gzip;q=0.9, zstd;q=0.5"], ALL, Zstd),
            // Several lines are one list (§5.3).
            (&["gzip", "br"], ALL, Br),
            (&["gzip;q=0.5", "br;q=0.2"], ALL, Gzip),
            (&["br;q=0", "*"], ALL, Zstd),
            (&["", "gzip"], ALL, Gzip),
            // Unknown codings are ignored.
            (&["deflate, compress, lz4"], ALL, Identity),
            (&["deflate, compress, lz4, gzip;q=0.1"], ALL, Gzip),
            // Junk does not panic and does not match.
            (&[";;;,;q=1,="], ALL, Identity),
            (&["gzip;;q=0.5;;, br;q=0.4"], ALL, Gzip),
        ];
        for (lines, prefer, expected) in cases {
            assert_eq!(choose(&headers(lines), prefer), *expected, "Accept-Encoding: {lines:?}, prefer {prefer:?}");
        }
    }

    #[test]
    fn a_line_that_is_not_ascii_is_skipped() {
        let mut map = headers(&["br"]);
        map.append(ACCEPT_ENCODING, HeaderValue::from_bytes(b"gzip;q=0.9\xff").expect("obs-text is allowed"));
        assert_eq!(choose(&map, ALL), Br);
        let mut map = HeaderMap::new();
        map.append(ACCEPT_ENCODING, HeaderValue::from_bytes(b"\xffgzip").expect("obs-text is allowed"));
        assert_eq!(choose(&map, ALL), Identity);
    }

    #[test]
    fn q_values() {
        let cases = [
            ("0", Some(0)),
            ("0.", Some(0)),
            ("0.5", Some(500)),
            ("0.05", Some(50)),
            ("0.005", Some(5)),
            ("0.123", Some(123)),
            ("1", Some(1000)),
            ("1.0", Some(1000)),
            ("1.000", Some(1000)),
            ("1.5", None),
            ("2", None),
            ("0.1234", None),
            ("", None),
            (".5", None),
            ("0.5x", None),
            ("+0.5", None),
            ("00.5", None),
            ("0,5", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_qvalue(text), expected, "{text:?}");
        }
    }
}
