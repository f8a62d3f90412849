//! What a revalidation (a 304, RFC 9111 §4.3.4) may do to the stored response, and which
//! response fields belong to one client only.
//!
//! A 304 answers the conditional request of one client (the one whose request went upstream):
//! its `Set-Cookie` is that client's session, never the representation's. RFC 9111 §3.2 lets a
//! cache update stored fields from a 304, but a field that identifies a user is not metadata of
//! the stored response: merged, it would be replayed to every later hit (the leak of issue 18).
//! Such fields go to the requesting client and nowhere else.
//!
//! The merged response is judged again as if it were new (RFC 9111 §3 via §4.3.4: "the cache
//! MUST use other header fields provided in the 304 to replace all instances of the
//! corresponding header fields in the stored response"): a 304 that makes it `private` or
//! `no-store`, or changes what it varies on, ends the stored copy.

use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderName, Method, StatusCode};

use super::headers::vary_fields;
use super::storable::{NotStorable, ServicePolicy, storable};

/// `Set-Cookie2` (RFC 2965, obsoleted by RFC 6265) still meets the same fate.
const SET_COOKIE2: HeaderName = HeaderName::from_static("set-cookie2");

/// Fields meant for the client whose request the response answers, never for a stored copy
/// (RFC 6265 §3: a cookie is state between one user agent and the origin; RFC 9111 §3.2 and
/// §4.3.4 leave them out of the update here).
pub fn is_per_request(name: &HeaderName) -> bool {
    *name == SET_COOKIE || *name == SET_COOKIE2
}

/// The per-request fields of `h`, in order.
pub fn per_request_fields(h: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in [SET_COOKIE, SET_COOKIE2] {
        for v in h.get_all(&name) {
            out.append(name.clone(), v.clone());
        }
    }
    out
}

/// Removes the per-request fields from `h` and returns them, in order.
pub fn take_per_request(h: &mut HeaderMap) -> HeaderMap {
    let out = per_request_fields(h);
    h.remove(SET_COOKIE);
    h.remove(SET_COOKIE2);
    out
}

/// What to do with the stored response after a 304 was merged into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// Store the merged response; every waiter may be served from it.
    Update,
    /// Remove the stored response: the merged one may not be stored (the label says why). It
    /// is served to the requesting client only.
    Remove(&'static str),
    /// Leave the stored response as it was (the request said `no-store`, RFC 9111 §5.2.1.5);
    /// the merged one is served to the requesting client only.
    Keep,
}

/// RFC 9111 §4.3.4 then §3: may the stored response take the 304's update?
/// `stored` and `merged` are its header sections before and after [`merge_not_modified`];
/// `req` is the request that went upstream.
///
/// [`merge_not_modified`]: super::merge_not_modified
pub fn refresh(
    stored: &HeaderMap,
    merged: &HeaderMap,
    status: StatusCode,
    req: &HeaderMap,
    policy: &ServicePolicy,
) -> Refresh {
    match storable(&Method::GET, req, status, merged, policy) {
        // §5.2.1.5: the request forbids storing anything of the response to it.
        Err(NotStorable::RequestNoStore) => return Refresh::Keep,
        // A response with no freshness stays stored: it is stale at once, and its validators
        // keep the next revalidation cheap (§4.3.1).
        Err(NotStorable::NoFreshness) | Ok(()) => {}
        Err(why) => return Refresh::Remove(why.as_str()),
    }
    // §4.1: the stored response sits under the secondary key of its old Vary; with other
    // fields it would be found by requests it does not match.
    if vary_fields(stored) != vary_fields(merged) {
        return Refresh::Remove("vary-changed");
    }
    Refresh::Update
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cache::policy::merge_not_modified;
    use http::HeaderValue;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    type H = &'static [(&'static str, &'static str)];

    #[test]
    fn refresh_table() {
        let stored: H = &[("etag", "\"v1\""), ("cache-control", "max-age=60"), ("vary", "accept-language")];
        let cases: [(&str, H, H, Refresh); 10] = [
            ("RFC 9111 §4.3.4 a plain 304 updates", &[], &[("cache-control", "max-age=120")], Refresh::Update),
            (
                "RFC 9111 §5.2.2.7 a 304 that makes it private ends the shared copy",
                &[],
                &[("cache-control", "private, max-age=60")],
                Refresh::Remove("private"),
            ),
            (
                "RFC 9111 §5.2.2.5 a 304 with no-store ends the stored copy",
                &[],
                &[("cache-control", "no-store")],
                Refresh::Remove("no-store"),
            ),
            (
                "RFC 9213 §2.1 CDN-Cache-Control: no-store reaches the CDN",
                &[],
                &[("cdn-cache-control", "no-store")],
                Refresh::Remove("no-store"),
            ),
            ("RFC 9111 §4.1 Vary: * matches nothing", &[], &[("vary", "*")], Refresh::Remove("vary-star")),
            (
                "RFC 9111 §4.1 a new Vary list moves the secondary key",
                &[],
                &[("vary", "accept-language, cookie")],
                Refresh::Remove("vary-changed"),
            ),
            ("RFC 9111 §4.1 the same Vary, other spelling", &[], &[("vary", "Accept-Language")], Refresh::Update),
            (
                "RFC 9111 §5.2.1.5 request no-store: the stored copy is left alone",
                &[("cache-control", "no-store")],
                &[("cache-control", "max-age=120")],
                Refresh::Keep,
            ),
            (
                "RFC 9111 §3.5 with Authorization the update must allow sharing",
                &[("authorization", "Basic eDp5")],
                &[("cache-control", "max-age=120")],
                Refresh::Remove("authorization"),
            ),
            (
                "RFC 9111 §3.2 a Set-Cookie in the 304 is not merged, so it changes nothing",
                &[],
                &[("set-cookie", "session=alice")],
                Refresh::Update,
            ),
        ];
        for (clause, req, nm, want) in cases {
            let mut merged = map(stored);
            merge_not_modified(&mut merged, &map(nm));
            let got = refresh(&map(stored), &merged, StatusCode::OK, &map(req), &ServicePolicy::default());
            assert_eq!(got, want, "{clause}");
        }
    }

    #[test]
    fn per_request_fields_are_taken_out() {
        let mut h = map(&[("set-cookie", "a=1"), ("etag", "\"v1\""), ("set-cookie", "b=2"), ("set-cookie2", "c=3")]);
        let taken = take_per_request(&mut h);
        assert_eq!(h, map(&[("etag", "\"v1\"")]), "RFC 6265 §3: no cookie stays");
        let cookies: Vec<_> = taken.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(cookies, ["a=1", "b=2"], "every Set-Cookie line, in order, for the requester");
        assert!(taken.contains_key(SET_COOKIE2));
    }
}
