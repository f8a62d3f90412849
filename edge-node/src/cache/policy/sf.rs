//! An exact parser for Structured Field Dictionaries (RFC 9651 §4.2.2), the type of
//! `CDN-Cache-Control` (RFC 9213 §2.1).
//!
//! Written here rather than taken from the `sfv` crate: the cache needs one top-level type
//! (Dictionary), reads three value types out of it (Integer, Boolean, String) and only has to
//! *validate* the rest, so a borrowed, allocation-light parser of ~300 lines with no new
//! dependency (sfv brings base64 and ref-cast, and its parsed types allocate maps) is the
//! smaller thing to audit and fuzz. It follows the algorithms of RFC 9651 §4.2 step by step,
//! every bare item type included (Date and Display String too, §4.2.9 and §4.2.10), so a
//! valid field is never refused; anything else is a parse error and the caller ignores the
//! whole field, as §4.2 requires ("fail parsing ... the entire field is ignored").
//!
//! Total: every input gives `Ok` or `Err`, never a panic; no recursion (inner lists do not
//! nest, §3.1.1); work is O(n log n) in the input.

use std::collections::BTreeMap;

/// A bare item's value (RFC 9651 §3.3), kept only for the types the cache reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Bare {
    Integer(i64),
    /// §3.3.3; escapes removed.
    String(String),
    Boolean(bool),
    /// Decimal, Token, Byte Sequence, Date or Display String: valid, not read by the cache.
    Other,
}

/// A dictionary member's value (§3.2): an Item or an Inner List. Parameters are validated and
/// dropped: RFC 9213 §2.1 says parameters on cache directives are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Member {
    Item(Bare),
    InnerList,
}

/// Why a field failed to parse; the offset is for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SfError {
    pub at: usize,
}

/// §4.2: parses `input` (the field lines already combined with ", ", RFC 9110 §5.3) as a
/// Dictionary. A repeated key takes its last value (§4.2.2: "overwrite its value"). The order
/// of members carries no meaning for cache directives, so they come back sorted by key, which
/// keeps a field of many repeated keys at O(n log n).
pub(super) fn parse_dictionary(input: &[u8]) -> Result<BTreeMap<String, Member>, SfError> {
    let mut p = Parser { s: input, i: 0 };
    // §4.2 step 2: a field that is not ASCII fails.
    if !input.is_ascii() {
        return Err(p.err());
    }
    p.skip_sp();
    let mut dict = BTreeMap::new();
    while !p.done() {
        let key = p.key()?;
        let member = if p.eat(b'=') {
            p.item_or_inner_list()?
        } else {
            // §4.2.2 step 3.3: a key alone is Boolean true (with parameters).
            p.parameters()?;
            Member::Item(Bare::Boolean(true))
        };
        dict.insert(key, member);
        p.skip_ows();
        if p.done() {
            break;
        }
        if !p.eat(b',') {
            return Err(p.err());
        }
        p.skip_ows();
        // §4.2.2 step 3.9: a trailing comma fails.
        if p.done() {
            return Err(p.err());
        }
    }
    // §4.2 steps 6-7: nothing may follow but SP (already consumed by the loop).
    Ok(dict)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self) -> SfError {
        SfError { at: self.i }
    }
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.i += 1;
        }
        hit
    }
    fn skip_sp(&mut self) {
        while self.eat(b' ') {}
    }
    /// OWS = *( SP / HTAB ) (RFC 9110 §5.6.3), allowed around dictionary commas (§4.2.2).
    fn skip_ows(&mut self) {
        while self.eat(b' ') || self.eat(b'\t') {}
    }

    /// §4.2.1.1.
    fn item_or_inner_list(&mut self) -> Result<Member, SfError> {
        if self.peek() == Some(b'(') {
            self.inner_list()?;
            return Ok(Member::InnerList);
        }
        let bare = self.bare_item()?;
        self.parameters()?;
        Ok(Member::Item(bare))
    }

    /// §4.2.1.2: "(" *SP [ item *( 1*SP item ) *SP ] ")" parameters.
    fn inner_list(&mut self) -> Result<(), SfError> {
        self.bump();
        while !self.done() {
            self.skip_sp();
            if self.eat(b')') {
                return self.parameters();
            }
            self.bare_item()?;
            self.parameters()?;
            if !matches!(self.peek(), Some(b' ' | b')')) {
                return Err(self.err());
            }
        }
        Err(self.err())
    }

    /// §4.2.3.2: *( ";" *SP key [ "=" bare-item ] ), validated and dropped.
    fn parameters(&mut self) -> Result<(), SfError> {
        while self.eat(b';') {
            self.skip_sp();
            self.key()?;
            if self.eat(b'=') {
                self.bare_item()?;
            }
        }
        Ok(())
    }

    /// §4.2.3.3: key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" ).
    fn key(&mut self) -> Result<String, SfError> {
        let start = self.i;
        if !matches!(self.peek(), Some(b'a'..=b'z' | b'*')) {
            return Err(self.err());
        }
        while matches!(self.peek(), Some(b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*')) {
            self.i += 1;
        }
        let key = self.s.get(start..self.i).ok_or(SfError { at: start })?;
        Ok(String::from_utf8_lossy(key).into_owned())
    }

    /// §4.2.3.1: the first character picks the type.
    fn bare_item(&mut self) -> Result<Bare, SfError> {
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => self.number().map(|n| n.map_or(Bare::Other, Bare::Integer)),
            Some(b'"') => self.string().map(Bare::String),
            Some(b'A'..=b'Z' | b'a'..=b'z' | b'*') => self.token().map(|()| Bare::Other),
            Some(b':') => self.byte_sequence().map(|()| Bare::Other),
            Some(b'?') => self.boolean().map(Bare::Boolean),
            Some(b'@') => self.date().map(|()| Bare::Other),
            Some(b'%') => self.display_string().map(|()| Bare::Other),
            _ => Err(self.err()),
        }
    }

    /// §4.2.4: an Integer (`Some`, at most 15 digits) or a Decimal (`None`, at most 12 integer
    /// and 3 fractional digits).
    fn number(&mut self) -> Result<Option<i64>, SfError> {
        let negative = self.eat(b'-');
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(self.err());
        }
        let (mut int_digits, mut frac_digits, mut decimal) = (0usize, 0usize, false);
        let mut value: i64 = 0;
        loop {
            match self.peek() {
                Some(c @ b'0'..=b'9') => {
                    if decimal {
                        frac_digits += 1;
                    } else {
                        int_digits += 1;
                        value = value.saturating_mul(10).saturating_add(i64::from(c - b'0'));
                    }
                }
                Some(b'.') if !decimal => {
                    if int_digits > 12 {
                        return Err(self.err());
                    }
                    decimal = true;
                }
                _ => break,
            }
            self.i += 1;
            if (!decimal && int_digits > 15) || (decimal && int_digits + frac_digits + 1 > 16) {
                return Err(self.err());
            }
        }
        if !decimal {
            return Ok(Some(if negative { -value } else { value }));
        }
        // A Decimal ends with a digit and has 1 to 3 fractional digits.
        if frac_digits == 0 || frac_digits > 3 {
            return Err(self.err());
        }
        Ok(None)
    }

    /// §4.2.5: DQUOTE *( unescaped / "%" / "\" ( DQUOTE / "\" ) ) DQUOTE, printable ASCII only.
    fn string(&mut self) -> Result<String, SfError> {
        self.bump();
        let mut out = String::new();
        while let Some(c) = self.bump() {
            match c {
                b'\\' => match self.bump() {
                    Some(n @ (b'"' | b'\\')) => out.push(char::from(n)),
                    _ => return Err(self.err()),
                },
                b'"' => return Ok(out),
                0x20..=0x7e => out.push(char::from(c)),
                _ => return Err(self.err()),
            }
        }
        Err(self.err())
    }

    /// §4.2.6: ( ALPHA / "*" ) *( tchar / ":" / "/" ).
    fn token(&mut self) -> Result<(), SfError> {
        self.bump();
        while self.peek().is_some_and(|c| is_tchar(c) || c == b':' || c == b'/') {
            self.i += 1;
        }
        Ok(())
    }

    /// §4.2.7: ":" base64 ":". Padding may be absent (the SHOULD NOT fail of §4.2.7); when
    /// present it must be where base64 puts it, or decoding would fail.
    fn byte_sequence(&mut self) -> Result<(), SfError> {
        self.bump();
        let rest = self.s.get(self.i..).unwrap_or_default();
        let Some(len) = rest.iter().position(|&c| c == b':') else {
            return Err(self.err());
        };
        let content = rest.get(..len).unwrap_or_default();
        if !content.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=')) {
            return Err(self.err());
        }
        let data_len = content.iter().rposition(|&c| c != b'=').map_or(0, |p| p + 1);
        let pad = content.len() - data_len;
        let misplaced = content.get(..data_len).is_some_and(|d| d.contains(&b'='));
        if misplaced || pad > 2 || data_len % 4 == 1 || (pad > 0 && (data_len + pad) % 4 != 0) {
            return Err(self.err());
        }
        self.i += len + 1;
        Ok(())
    }

    /// §4.2.8: "?" ( "0" / "1" ).
    fn boolean(&mut self) -> Result<bool, SfError> {
        self.bump();
        match self.bump() {
            Some(b'1') => Ok(true),
            Some(b'0') => Ok(false),
            _ => Err(self.err()),
        }
    }

    /// §4.2.9: "@" Integer (a Decimal fails).
    fn date(&mut self) -> Result<(), SfError> {
        self.bump();
        match self.number()? {
            Some(_) => Ok(()),
            None => Err(self.err()),
        }
    }

    /// §4.2.10: "%" DQUOTE *( unescaped / "\" / pct-encoded ) DQUOTE, where pct-encoded is
    /// lowercase hex and the decoded bytes are UTF-8.
    fn display_string(&mut self) -> Result<(), SfError> {
        self.bump();
        if !self.eat(b'"') {
            return Err(self.err());
        }
        let mut bytes = Vec::new();
        while let Some(c) = self.bump() {
            match c {
                b'%' => {
                    let (Some(hi), Some(lo)) = (self.bump().and_then(lower_hex), self.bump().and_then(lower_hex))
                    else {
                        return Err(self.err());
                    };
                    bytes.push((hi << 4) | lo);
                }
                b'"' => return std::str::from_utf8(&bytes).map(|_| ()).map_err(|_| self.err()),
                0x20..=0x7e => bytes.push(c),
                _ => return Err(self.err()),
            }
        }
        Err(self.err())
    }
}

/// tchar (RFC 9110 §5.6.2).
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn lower_hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    type Members = Vec<(std::string::String, Member)>;

    fn ok(s: &str) -> BTreeMap<String, Member> {
        parse_dictionary(s.as_bytes()).unwrap_or_else(|e| panic!("{s:?} failed at {}", e.at))
    }

    fn item(key: &str, b: Bare) -> (String, Member) {
        (key.to_string(), Member::Item(b))
    }

    #[test]
    fn valid_dictionaries() {
        use Bare::*;
        let cases: &[(&str, &str, Members)] = &[
            ("RFC 9651 §4.2.2 key alone is true", "no-store", vec![item("no-store", Boolean(true))]),
            ("RFC 9651 §4.2.4 Integer", "max-age=60", vec![item("max-age", Integer(60))]),
            ("RFC 9651 §4.2.4 negative Integer", "a=-7", vec![item("a", Integer(-7))]),
            ("RFC 9651 §4.2.4 15 digits", "a=999999999999999", vec![item("a", Integer(999_999_999_999_999))]),
            ("RFC 9651 §4.2.4 Decimal", "a=1.5, b=-0.125", vec![item("a", Other), item("b", Other)]),
            ("RFC 9651 §4.2.5 String with escapes", r#"a="x\"y\\z""#, vec![item("a", String(r#"x"y\z"#.into()))]),
            ("RFC 9651 §4.2.6 Token", "a=foo/bar:baz*", vec![item("a", Other)]),
            ("RFC 9651 §4.2.7 Byte Sequence", "a=:aGVsbG8=:, b=:aGVsbG8:", vec![item("a", Other), item("b", Other)]),
            ("RFC 9651 §4.2.8 Booleans", "a=?0, b=?1", vec![item("a", Boolean(false)), item("b", Boolean(true))]),
            ("RFC 9651 §4.2.9 Date", "a=@1659578233", vec![item("a", Other)]),
            ("RFC 9651 §4.2.10 Display String", r#"a=%"f%c3%bc%c3%bc""#, vec![item("a", Other)]),
            (
                "RFC 9651 §4.2.1.2 Inner List",
                r#"a=(1 "x" tok;p=1 );q, b"#,
                vec![("a".into(), Member::InnerList), item("b", Boolean(true))],
            ),
            ("RFC 9651 §4.2.1.2 empty Inner List", "a=()", vec![("a".into(), Member::InnerList)]),
            (
                "RFC 9651 §4.2.3.2 parameters dropped",
                "max-age=60;x=?0;y, public;a=1",
                vec![item("max-age", Integer(60)), item("public", Boolean(true))],
            ),
            (
                "RFC 9651 §4.2.2 repeated key: last value wins",
                "a=1, b, a=2",
                vec![item("a", Integer(2)), item("b", Boolean(true))],
            ),
            ("RFC 9651 §4.2.2 OWS around commas", "a=1 ,\tb=2", vec![item("a", Integer(1)), item("b", Integer(2))]),
            ("RFC 9651 §4.2 leading SP discarded", "  a", vec![item("a", Boolean(true))]),
            ("RFC 9651 §4.2.2 empty field: empty dictionary", "", vec![]),
            ("RFC 9651 §4.2.3.3 key characters", "*a_b-c.d*9", vec![item("*a_b-c.d*9", Boolean(true))]),
        ];
        for (clause, input, want) in cases {
            let want: BTreeMap<std::string::String, Member> = want.iter().cloned().collect();
            assert_eq!(ok(input), want, "{clause}: {input:?}");
        }
    }

    #[test]
    fn invalid_dictionaries() {
        let cases: &[(&str, &str)] = &[
            ("RFC 9651 §4.2.3.3 uppercase key", "Max-Age=60"),
            ("RFC 9651 §4.2.3.3 key starting with a digit", "1a=1"),
            ("RFC 9651 §4.2.2 trailing comma", "a=1,"),
            ("RFC 9651 §4.2.2 empty member", "a=1,,b=2"),
            ("RFC 9651 §4.2.2 missing comma", "a=1 b=2"),
            ("RFC 9651 §4.2.2 no whitespace before =", "a =1"),
            ("RFC 9651 §4.2.3.1 no whitespace after =", "a= 1"),
            ("RFC 9651 §4.2.3.1 missing value", "a="),
            ("RFC 9651 §4.2.4 16-digit Integer", "a=1234567890123456"),
            ("RFC 9651 §4.2.4 13 integer digits in a Decimal", "a=1234567890123.1"),
            ("RFC 9651 §4.2.4 4 fractional digits", "a=1.1234"),
            ("RFC 9651 §4.2.4 Decimal ending with a dot", "a=1."),
            ("RFC 9651 §4.2.4 sign alone", "a=-"),
            ("RFC 9651 §4.2.4 plus sign", "a=+1"),
            ("RFC 9651 §4.2.4 number then junk", "max-age=60+30"),
            ("RFC 9651 §4.2.5 unterminated String", r#"a="x"#),
            ("RFC 9651 §4.2.5 bad escape", r#"a="\x""#),
            ("RFC 9651 §4.2.5 control character in String", "a=\"\t\""),
            ("RFC 9651 §4.2.7 bad base64 character", "a=:aGV*:"),
            ("RFC 9651 §4.2.7 unterminated Byte Sequence", "a=:aGVs"),
            ("RFC 9651 §4.2.7 impossible base64 length", "a=:aGVsb:"),
            ("RFC 9651 §4.2.8 bad Boolean", "a=?2"),
            ("RFC 9651 §4.2.9 Decimal Date", "a=@1.5"),
            ("RFC 9651 §4.2.10 uppercase hex in Display String", r#"a=%"%C3%BC""#),
            ("RFC 9651 §4.2.10 invalid UTF-8", r#"a=%"%ff""#),
            ("RFC 9651 §4.2.1.2 unterminated Inner List", "a=(1 2"),
            ("RFC 9651 §4.2.1.2 items not separated", r#"a=(1"x")"#),
            ("RFC 9651 §4.2.3.2 parameter without key", "a;=1"),
            ("RFC 9651 §4.2 non-ASCII", "a=\"\u{fc}\""),
            ("RFC 9651 §4.2.3.1 unknown item type", "a=#1"),
            ("RFC 9111-style list is not a Dictionary", r#"no-cache="a", max-age = 5"#),
        ];
        for (clause, input) in cases {
            assert!(parse_dictionary(input.as_bytes()).is_err(), "{clause}: {input:?}");
        }
    }

    #[test]
    fn hostile_bytes_never_panic() {
        // xorshift over the characters the grammar cares about.
        let alphabet = b"az09-.*_=;,() \t\"\\:?@%+/=AZ\x7f\xff";
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = usize::try_from(x % 24).unwrap();
            let bytes: Vec<u8> = (0..len)
                .map(|i| alphabet[usize::try_from((x >> (i % 8 * 8)) % alphabet.len() as u64).unwrap()])
                .collect();
            let _ = parse_dictionary(&bytes);
        }
    }
}
