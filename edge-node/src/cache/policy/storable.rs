//! May a response be stored at all? RFC 9111 §3, for a shared cache.

use std::time::Duration;

use http::header::{AUTHORIZATION, ETAG, EXPIRES, LAST_MODIFIED, SET_COOKIE};
use http::{HeaderMap, Method, StatusCode};

use super::directives::{Source, request_directives, response_directives};
use super::freshness::{heuristically_cacheable, parse_http_date};
use super::headers::vary_fields;

/// Per-service caching knobs, from the service's config.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePolicy {
    /// Lifetime for responses with no explicit expiry and no usable Last-Modified.
    /// Applies only where heuristic freshness could (heuristically cacheable status or
    /// `public`), so a 500 without Cache-Control is never stored by default. Default: none.
    pub default_ttl: Option<Duration>,
    /// Heuristic lifetime as a fraction of (Date − Last-Modified), RFC 9111 §4.2.2.
    /// Clamped to 0..=1; 0 or NaN disables heuristics. Default: 0.1.
    pub heuristic_fraction: f64,
    /// Upper bound of a heuristic lifetime. Default: 24 h.
    pub max_heuristic_ttl: Duration,
    /// Store responses that carry Set-Cookie (sent to every client that gets a hit). Default: false.
    pub store_set_cookie: bool,
    /// Obey request no-store / no-cache / max-age / max-stale / min-fresh. Default: true.
    pub honor_client_cache_control: bool,
}

impl Default for ServicePolicy {
    fn default() -> Self {
        ServicePolicy {
            default_ttl: None,
            heuristic_fraction: 0.1,
            max_heuristic_ttl: Duration::from_secs(24 * 3600),
            store_set_cookie: false,
            honor_client_cache_control: true,
        }
    }
}

/// Why a response was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStorable {
    Method,
    Status,
    NoStore,
    Private,
    Authorization,
    SetCookie,
    VaryStar,
    NoFreshness,
    RequestNoStore,
}

impl NotStorable {
    /// Bounded label for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            NotStorable::Method => "method",
            NotStorable::Status => "status",
            NotStorable::NoStore => "no-store",
            NotStorable::Private => "private",
            NotStorable::Authorization => "authorization",
            NotStorable::SetCookie => "set-cookie",
            NotStorable::VaryStar => "vary-star",
            NotStorable::NoFreshness => "no-freshness",
            NotStorable::RequestNoStore => "request-no-store",
        }
    }
}

/// Request method and headers as the client sent them; response status and headers as the
/// origin sent them. The cache fetches GET for HEAD misses, so only GET is storable.
pub fn storable(
    method: &Method,
    req: &HeaderMap,
    status: StatusCode,
    resp: &HeaderMap,
    policy: &ServicePolicy,
) -> Result<(), NotStorable> {
    // RFC 9111 §3: the request method is understood by the cache (GET only here).
    if method != Method::GET {
        return Err(NotStorable::Method);
    }
    // RFC 9111 §3: final status code understood; 206 and 304 are not stored as such (§3.3, §4.3.4).
    let code = status.as_u16();
    if !(200..=599).contains(&code) || code == 206 || code == 304 {
        return Err(NotStorable::Status);
    }
    let (d, source) = response_directives(resp);
    // RFC 9111 §3: no-store in the response.
    if d.no_store {
        return Err(NotStorable::NoStore);
    }
    // RFC 9111 §3 / §5.2.1.5: no-store in the request.
    if policy.honor_client_cache_control && request_directives(req).no_store {
        return Err(NotStorable::RequestNoStore);
    }
    // RFC 9111 §3 / §5.2.2.7: a shared cache does not store private responses.
    if d.private {
        return Err(NotStorable::Private);
    }
    // RFC 9111 §3.5: with Authorization, only if public, s-maxage or must-revalidate.
    if req.contains_key(AUTHORIZATION) && !(d.public || d.s_maxage.is_some() || d.must_revalidate) {
        return Err(NotStorable::Authorization);
    }
    // Service policy: Set-Cookie would be replayed to every client.
    if resp.contains_key(SET_COOKIE) && !policy.store_set_cookie {
        return Err(NotStorable::SetCookie);
    }
    // RFC 9111 §4.1: Vary: * never matches, storing it is useless.
    if vary_fields(resp).is_err() {
        return Err(NotStorable::VaryStar);
    }
    // RFC 9111 §3: explicit expiry, public, heuristically cacheable status, or (§5.2.2.4)
    // no-cache with a validator to revalidate with.
    let heuristic_ok = heuristically_cacheable(status) || d.public;
    let has_freshness = d.public
        || d.max_age.is_some()
        || d.s_maxage.is_some()
        // §5.3: an invalid Expires is still explicit (already expired); RFC 9213 §2.1: ignored
        // when a targeted field is used.
        || (source == Source::CacheControl && resp.contains_key(EXPIRES))
        || (heuristic_ok && heuristic_enabled(policy) && last_modified(resp))
        || (d.no_cache && (resp.contains_key(ETAG) || last_modified(resp)))
        || (heuristic_ok && policy.default_ttl.is_some());
    if !has_freshness {
        return Err(NotStorable::NoFreshness);
    }
    Ok(())
}

fn last_modified(resp: &HeaderMap) -> bool {
    resp.get(LAST_MODIFIED).and_then(parse_http_date).is_some()
}

pub(super) fn heuristic_enabled(policy: &ServicePolicy) -> bool {
    policy.heuristic_fraction > 0.0 && !policy.max_heuristic_ttl.is_zero()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    struct Case {
        clause: &'static str,
        method: Method,
        req: &'static [(&'static str, &'static str)],
        status: u16,
        resp: &'static [(&'static str, &'static str)],
        policy: ServicePolicy,
        want: Result<(), NotStorable>,
    }

    const LM: (&str, &str) = ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT");

    #[test]
    fn storable_table() {
        let p = ServicePolicy::default;
        let get = || Method::GET;
        let cases = [
            Case {
                clause: "RFC 9111 §3 max-age: storable",
                method: get(),
                req: &[],
                status: 200,
                resp: &[("cache-control", "max-age=60")],
                policy: p(),
                want: Ok(()),
            },
            Case {
                clause: "RFC 9111 §3 method not understood/cacheable (POST)",
                method: Method::POST,
                req: &[],
                status: 200,
                resp: &[("cache-control", "max-age=60")],
                policy: p(),
                want: Err(NotStorable::Method),
            },
            Case {
                clause: "RFC 9111 §3 HEAD is fetched as GET by the cache",
                method: Method::HEAD,
                req: &[],
                status: 200,
                resp: &[("cache-control", "max-age=60")],
                policy: p(),
                want: Err(NotStorable::Method),
            },
            Case {
                clause: "RFC 9111 §3.3 206 not stored as a complete response",
                method: get(),
                req: &[],
                status: 206,
                resp: &[("cache-control", "max-age=60")],
                policy: p(),
                want: Err(NotStorable::Status),
            },
            Case {
                clause: "RFC 9111 §4.3.4 304 updates, is not stored",
                method: get(),
                req: &[],
                status: 304,
                resp: &[("cache-control", "max-age=60")],
                policy: p(),
                want: Err(NotStorable::Status),
            },
            Case {
                clause: "RFC 9111 §3 final status only (1xx)",
                method: get(),
                req: &[],
                status: 103,
                resp: &[("cache-control", "max-age=60")],
                policy: p(),
                want: Err(NotStorable::Status),
            },
            Case {
                clause: "RFC 9111 §3 status not understood (799)",
                method: get(),
                req: &[],
                status: 799,
                resp: &[("cache-control", "max-age=60")],
                policy: p(),
                want: Err(NotStorable::Status),
            },
            Case {
                clause: "RFC 9111 §5.2.2.5 response no-store",
                method: get(),
                req: &[],
                status: 200,
                resp: &[("cache-control", "max-age=60, no-store")],
                policy: p(),
                want: Err(NotStorable::NoStore),
            },
            Case {
                clause: "RFC 9213 §2.1 targeted field overrides no-store in Cache-Control",
                method: get(),
                req: &[],
                status: 200,
                resp: &[("cache-control", "no-store"), ("cdn-cache-control", "max-age=60")],
                policy: p(),
                want: Ok(()),
            },
            Case {
                clause: "RFC 9111 §5.2.1.5 request no-store (honored)",
                method: get(),
                req: &[("cache-control", "no-store")],
                status: 200,
                resp: &[("cache-control", "max-age=60")],
                policy: p(),
                want: Err(NotStorable::RequestNoStore),
            },
            Case {
                clause: "RFC 9111 §5.2.1.5 request no-store ignored when client CC not honored",
                method: get(),
                req: &[("cache-control", "no-store")],
                status: 200,
                resp: &[("cache-control", "max-age=60")],
                policy: ServicePolicy { honor_client_cache_control: false, ..p() },
                want: Ok(()),
            },
            Case {
                clause: "RFC 9111 §5.2.2.7 private: not in a shared cache",
                method: get(),
                req: &[],
                status: 200,
                resp: &[("cache-control", "private, max-age=60")],
                policy: p(),
                want: Err(NotStorable::Private),
            },
            Case {
                clause: "RFC 9111 §3.5 Authorization without public/s-maxage/must-revalidate",
                method: get(),
                req: &[("authorization", "Bearer x")],
                status: 200,
                resp: &[("cache-control", "max-age=60")],
                policy: p(),
                want: Err(NotStorable::Authorization),
            },
            Case {
                clause: "RFC 9111 §3.5 Authorization with public",
                method: get(),
                req: &[("authorization", "Bearer x")],
                status: 200,
                resp: &[("cache-control", "public, max-age=60")],
                policy: p(),
                want: Ok(()),
            },
            Case {
                clause: "RFC 9111 §3.5 Authorization with s-maxage",
                method: get(),
                req: &[("authorization", "Bearer x")],
                status: 200,
                resp: &[("cache-control", "s-maxage=60")],
                policy: p(),
                want: Ok(()),
            },
            Case {
                clause: "RFC 9111 §3.5 Authorization with must-revalidate",
                method: get(),
                req: &[("authorization", "Bearer x")],
                status: 200,
                resp: &[("cache-control", "max-age=60, must-revalidate")],
                policy: p(),
                want: Ok(()),
            },
            Case {
                clause: "service policy: Set-Cookie not stored",
                method: get(),
                req: &[],
                status: 200,
                resp: &[("cache-control", "max-age=60"), ("set-cookie", "a=b")],
                policy: p(),
                want: Err(NotStorable::SetCookie),
            },
            Case {
                clause: "service policy: Set-Cookie stored when allowed",
                method: get(),
                req: &[],
                status: 200,
                resp: &[("cache-control", "max-age=60"), ("set-cookie", "a=b")],
                policy: ServicePolicy { store_set_cookie: true, ..p() },
                want: Ok(()),
            },
            Case {
                clause: "RFC 9111 §4.1 Vary: * never matches",
                method: get(),
                req: &[],
                status: 200,
                resp: &[("cache-control", "max-age=60"), ("vary", "accept, *")],
                policy: p(),
                want: Err(NotStorable::VaryStar),
            },
            Case {
                clause: "RFC 9111 §3 no explicit or heuristic freshness",
                method: get(),
                req: &[],
                status: 200,
                resp: &[],
                policy: p(),
                want: Err(NotStorable::NoFreshness),
            },
            Case {
                clause: "RFC 9111 §3 public is enough",
                method: get(),
                req: &[],
                status: 200,
                resp: &[("cache-control", "public")],
                policy: p(),
                want: Ok(()),
            },
            Case {
                clause: "RFC 9111 §3 Expires (valid)",
                method: get(),
                req: &[],
                status: 200,
                resp: &[("expires", "Sun, 06 Nov 1994 08:49:37 GMT")],
                policy: p(),
                want: Ok(()),
            },
            Case {
                clause: "RFC 9111 §5.3 invalid Expires is explicit (already expired)",
                method: get(),
                req: &[],
                status: 200,
                resp: &[("expires", "0")],
                policy: p(),
                want: Ok(()),
            },
            Case {
                clause: "RFC 9213 §2.1 Expires ignored under a targeted field",
                method: get(),
                req: &[],
                status: 500,
                resp: &[("expires", "0"), ("cdn-cache-control", "no-transform")],
                policy: p(),
                want: Err(NotStorable::NoFreshness),
            },
            Case {
                clause: "RFC 9111 §4.2.2 heuristically cacheable status with Last-Modified",
                method: get(),
                req: &[],
                status: 404,
                resp: &[LM],
                policy: p(),
                want: Ok(()),
            },
            Case {
                clause: "RFC 9111 §4.2.2 500 is not heuristically cacheable",
                method: get(),
                req: &[],
                status: 500,
                resp: &[LM],
                policy: p(),
                want: Err(NotStorable::NoFreshness),
            },
            Case {
                clause: "RFC 9111 §4.2.2 heuristics disabled by policy",
                method: get(),
                req: &[],
                status: 200,
                resp: &[LM],
                policy: ServicePolicy { heuristic_fraction: 0.0, ..p() },
                want: Err(NotStorable::NoFreshness),
            },
            Case {
                clause: "RFC 9111 §5.2.2.4 no-cache with a validator: store, always revalidate",
                method: get(),
                req: &[],
                status: 500,
                resp: &[("cache-control", "no-cache"), ("etag", "\"a\"")],
                policy: p(),
                want: Ok(()),
            },
            Case {
                clause: "RFC 9111 §5.2.2.4 no-cache without a validator",
                method: get(),
                req: &[],
                status: 500,
                resp: &[("cache-control", "no-cache")],
                policy: p(),
                want: Err(NotStorable::NoFreshness),
            },
            Case {
                clause: "RFC 9111 §4.2.2 default_ttl where heuristics may apply",
                method: get(),
                req: &[],
                status: 200,
                resp: &[],
                policy: ServicePolicy { default_ttl: Some(Duration::from_secs(5)), ..p() },
                want: Ok(()),
            },
            Case {
                clause: "RFC 9111 §4.2.2 default_ttl not for a 500",
                method: get(),
                req: &[],
                status: 500,
                resp: &[],
                policy: ServicePolicy { default_ttl: Some(Duration::from_secs(5)), ..p() },
                want: Err(NotStorable::NoFreshness),
            },
            Case {
                clause: "RFC 9111 §3 explicit max-age makes a 500 storable",
                method: get(),
                req: &[],
                status: 500,
                resp: &[("cache-control", "max-age=5")],
                policy: p(),
                want: Ok(()),
            },
        ];
        for c in cases {
            let got =
                storable(&c.method, &map(c.req), StatusCode::from_u16(c.status).unwrap(), &map(c.resp), &c.policy);
            assert_eq!(got, c.want, "{}", c.clause);
        }
    }

    #[test]
    fn labels_are_distinct() {
        let all = [
            NotStorable::Method,
            NotStorable::Status,
            NotStorable::NoStore,
            NotStorable::Private,
            NotStorable::Authorization,
            NotStorable::SetCookie,
            NotStorable::VaryStar,
            NotStorable::NoFreshness,
            NotStorable::RequestNoStore,
        ];
        let mut labels: Vec<_> = all.iter().map(NotStorable::as_str).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), all.len());
    }
}
