//! The cache's account of a request: the `Cache-Status` entry (RFC 9211) and the bounded
//! outcome label for metrics and the access log.

use std::fmt::Write;

/// RFC 9211 §2.2 `fwd` values this node uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fwd {
    UriMiss,
    VaryMiss,
    Stale,
    Request,
    Method,
    Bypass,
}

impl Fwd {
    fn as_str(self) -> &'static str {
        match self {
            Fwd::UriMiss => "uri-miss",
            Fwd::VaryMiss => "vary-miss",
            Fwd::Stale => "stale",
            Fwd::Request => "request",
            Fwd::Method => "method",
            Fwd::Bypass => "bypass",
        }
    }
}

/// RFC 9211 §2.8 `detail`: what this node adds to the entry's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    StaleWhileRevalidate,
    StaleIfError,
    /// The response is streaming into the store and is not stored yet (its body is larger
    /// than `cache.buffer_before_answer`): `stored` is said only once it is true (§2.5).
    Storing,
    /// The upstream's body broke off (reset, closed early, malformed) before it was complete:
    /// nothing was stored and the client got an error (or a stale copy) instead.
    BodyIncomplete,
    /// The upstream's body stopped for longer than `between_bytes_timeout` (or the whole
    /// exchange passed `total_timeout`): nothing was stored.
    BodyTimeout,
}

impl Detail {
    fn as_str(self) -> &'static str {
        match self {
            Detail::StaleWhileRevalidate => "stale-while-revalidate",
            Detail::StaleIfError => "stale-if-error",
            Detail::Storing => "storing",
            Detail::BodyIncomplete => "upstream-body-incomplete",
            Detail::BodyTimeout => "upstream-body-timeout",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStatus {
    pub hit: bool,
    pub fwd: Option<Fwd>,
    pub fwd_status: Option<u16>,
    pub stored: bool,
    pub collapsed: bool,
    pub ttl: Option<i64>,
    pub detail: Option<Detail>,
}

impl CacheStatus {
    pub fn hit(ttl: i64) -> Self {
        Self { hit: true, ttl: Some(ttl), ..Self::default() }
    }

    pub fn forward(fwd: Fwd) -> Self {
        Self { fwd: Some(fwd), ..Self::default() }
    }

    /// `Cache-Status` entry for this node.
    pub fn header_value(&self, node: &str) -> String {
        let mut s = String::with_capacity(64);
        s.push_str(node);
        if self.hit {
            s.push_str("; hit");
        }
        if let Some(f) = self.fwd {
            let _ = write!(s, "; fwd={}", f.as_str());
        }
        if let Some(st) = self.fwd_status {
            let _ = write!(s, "; fwd-status={st}");
        }
        if self.stored {
            s.push_str("; stored");
        }
        if self.collapsed {
            s.push_str("; collapsed");
        }
        if let Some(ttl) = self.ttl {
            let _ = write!(s, "; ttl={ttl}");
        }
        if let Some(detail) = self.detail {
            let _ = write!(s, "; detail={}", detail.as_str());
        }
        s
    }

    /// Bounded label: hit, stale, revalidated, miss, collapsed, pass, stale_if_error, error.
    pub fn outcome(&self) -> &'static str {
        match (self.hit, self.fwd, self.detail) {
            (true, _, Some(Detail::StaleWhileRevalidate)) => "stale",
            (true, _, _) => "hit",
            (_, _, Some(Detail::StaleIfError)) => "stale_if_error",
            (_, _, Some(Detail::BodyIncomplete | Detail::BodyTimeout)) => "error",
            (_, Some(Fwd::Stale), _) if self.fwd_status == Some(304) => "revalidated",
            (_, Some(Fwd::Method | Fwd::Bypass), _) => "pass",
            _ if self.collapsed => "collapsed",
            _ => "miss",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_rfc_9211() {
        let table = [
            (CacheStatus::hit(57), "n; hit; ttl=57", "hit"),
            (
                CacheStatus {
                    fwd: Some(Fwd::UriMiss),
                    fwd_status: Some(200),
                    stored: true,
                    ttl: Some(60),
                    ..Default::default()
                },
                "n; fwd=uri-miss; fwd-status=200; stored; ttl=60",
                "miss",
            ),
            (
                CacheStatus {
                    hit: true,
                    ttl: Some(-3),
                    detail: Some(Detail::StaleWhileRevalidate),
                    ..Default::default()
                },
                "n; hit; ttl=-3; detail=stale-while-revalidate",
                "stale",
            ),
            (
                CacheStatus { fwd: Some(Fwd::UriMiss), fwd_status: Some(200), collapsed: true, ..Default::default() },
                "n; fwd=uri-miss; fwd-status=200; collapsed",
                "collapsed",
            ),
            (CacheStatus::forward(Fwd::Method), "n; fwd=method", "pass"),
            // RFC 9211 §2.5: `stored` only once it is true; a body still streaming in says so.
            (
                CacheStatus {
                    fwd: Some(Fwd::UriMiss),
                    fwd_status: Some(200),
                    ttl: Some(60),
                    detail: Some(Detail::Storing),
                    ..Default::default()
                },
                "n; fwd=uri-miss; fwd-status=200; ttl=60; detail=storing",
                "miss",
            ),
            // RFC 9211 §2.4 fwd-status: what the origin answered; §2.8 detail: why it is not
            // what the client got.
            (
                CacheStatus {
                    fwd: Some(Fwd::UriMiss),
                    fwd_status: Some(200),
                    detail: Some(Detail::BodyIncomplete),
                    ..Default::default()
                },
                "n; fwd=uri-miss; fwd-status=200; detail=upstream-body-incomplete",
                "error",
            ),
            (
                CacheStatus {
                    fwd: Some(Fwd::UriMiss),
                    fwd_status: Some(200),
                    collapsed: true,
                    detail: Some(Detail::BodyTimeout),
                    ..Default::default()
                },
                "n; fwd=uri-miss; fwd-status=200; collapsed; detail=upstream-body-timeout",
                "error",
            ),
            (
                CacheStatus {
                    fwd: Some(Fwd::Stale),
                    fwd_status: Some(304),
                    stored: true,
                    ttl: Some(60),
                    ..Default::default()
                },
                "n; fwd=stale; fwd-status=304; stored; ttl=60",
                "revalidated",
            ),
        ];
        for (status, header, outcome) in table {
            assert_eq!(status.header_value("n"), header);
            assert_eq!(status.outcome(), outcome, "{header}");
        }
    }
}
