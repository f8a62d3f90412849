//! What the route phase's rules tell the cache about one request (a request extension set by
//! `route::rules`): fields added to its key, bypass, and the edge TTL its response gets.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::policy::{self, CDN_CACHE_CONTROL, SURROGATE_CONTROL};

#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Header and cookie values added to the key (`route::rules::key`), after the URL.
    pub key_extra: Option<Arc<str>>,
    /// Neither look up nor store (RFC 9211 `fwd=bypass`).
    pub bypass: bool,
    pub edge_ttl: Option<EdgeTtl>,
}

/// A rule's `cache.edge_ttl`, applied to the upstream's response head before the cache judges
/// it, as the `CDN-Cache-Control` field the cache obeys before `Cache-Control` (RFC 9213 §2.1);
/// the edge removes that field before the client, so the browser sees the origin's own.
#[derive(Debug, Clone)]
pub struct EdgeTtl {
    /// `max-age=N[, stale-while-revalidate=S][, stale-if-error=E]`.
    pub value: HeaderValue,
    /// `origin_cache_control = "override"`: whatever the origin said. Otherwise only for a
    /// response that names no lifetime of its own.
    pub override_origin: bool,
}

impl EdgeTtl {
    /// Sets the lifetime on `headers`, a response with `status` from the upstream. Only for
    /// statuses cacheable by default (RFC 9110 §15.1), so an origin's 5xx is never kept for a
    /// day because a path rule said so; a 304 is left alone (its stored response has it).
    pub fn apply(&self, status: StatusCode, headers: &mut HeaderMap) {
        if !matches!(status.as_u16(), 200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501) {
            return;
        }
        if !self.override_origin && has_lifetime(headers) {
            return;
        }
        headers.remove(&SURROGATE_CONTROL);
        headers.insert(CDN_CACHE_CONTROL.clone(), self.value.clone());
    }
}

/// RFC 9111 §4.2.1: an explicit lifetime (max-age, s-maxage, Expires), or a directive that says
/// the response must not be stored or reused as it is.
fn has_lifetime(headers: &HeaderMap) -> bool {
    let (d, _) = policy::response_directives(headers);
    d.max_age.is_some()
        || d.s_maxage.is_some()
        || d.no_store
        || d.no_cache
        || d.private
        || headers.contains_key(header::EXPIRES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_ttl_respects_or_overrides_the_origin() {
        let ttl = |over| EdgeTtl { value: HeaderValue::from_static("max-age=86400"), override_origin: over };
        /// (clause, override, status, the origin's fields, CDN-Cache-Control after)
        type Case = (&'static str, bool, u16, &'static [(&'static str, &'static str)], Option<&'static str>);
        let cases: &[Case] = &[
            ("RFC 9111 §4.2.2 no lifetime: the rule's", false, 200, &[], Some("max-age=86400")),
            ("§5.2.2.1 origin max-age respected", false, 200, &[("cache-control", "max-age=60")], None),
            ("§5.3 Expires respected", false, 200, &[("expires", "Thu, 01 Jan 2099 00:00:00 GMT")], None),
            ("§5.2.2.5 no-store respected", false, 200, &[("cache-control", "no-store")], None),
            (
                "Cache-Control: public alone names no lifetime",
                false,
                200,
                &[("cache-control", "public")],
                Some("max-age=86400"),
            ),
            ("override beats max-age", true, 200, &[("cache-control", "max-age=60")], Some("max-age=86400")),
            (
                "RFC 9213 override replaces the origin's CDN-Cache-Control",
                true,
                200,
                &[("cdn-cache-control", "max-age=5")],
                Some("max-age=86400"),
            ),
            ("a 5xx is never given a lifetime", true, 503, &[], None),
            ("a 404 is cacheable by default", false, 404, &[], Some("max-age=86400")),
        ];
        for (clause, over, status, fields, want) in cases {
            let mut h = HeaderMap::new();
            for &(n, v) in fields.iter() {
                h.insert(http::HeaderName::from_static(n), HeaderValue::from_static(v));
            }
            let before = h.get(&CDN_CACHE_CONTROL).cloned();
            ttl(*over).apply(StatusCode::from_u16(*status).unwrap_or(StatusCode::OK), &mut h);
            let after = h.get(&CDN_CACHE_CONTROL).cloned();
            match want {
                Some(v) => assert_eq!(after.as_ref().and_then(|v| v.to_str().ok()), Some(*v), "{clause}"),
                None => assert_eq!(after, before, "{clause}"),
            }
        }
    }
}
