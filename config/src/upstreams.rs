//! A service's upstreams and how it copes when they fail: origins with failover groups and a
//! balancing policy, the shield tier, active health checks, passive failure detection (the
//! circuit breaker) and retries. File form only; the bounds are checked in
//! [`validate`](crate::validate), and the edge node's `upstream` module does the deciding.

use std::time::Duration;

use serde::Deserialize;

use crate::origin::OriginUrl;
use crate::units::duration;

/// Most origins a service may list.
pub const MAX_ORIGINS: usize = 64;
/// Most shields a service may list.
pub const MAX_SHIELDS: usize = 64;

/// `[[services.origins]]`: one origin server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginConfig {
    /// Scheme, host and port. Required; unique within the service.
    pub url: OriginUrl,
    /// Failover group: 0 is the primary, 1 the first backup, and so on. Requests go to the
    /// lowest-numbered group that has a healthy member (CloudFront origin groups). Default: 0.
    #[serde(default)]
    pub group: u8,
    /// Share of requests relative to the other members of its group (`round_robin` and
    /// `consistent_hash`). Default: 1; 1 to 1000.
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// `[[services.shields]]`: one origin-shield node in front of the origins.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShieldConfig {
    /// Scheme, host and port of the shield's listener. Required; unique within the service.
    /// It is also the shield's identity in rendezvous hashing: changing it moves its keys.
    pub url: OriginUrl,
    /// PoP the shield runs in, e.g. `"fra"`, for logs and metrics. Required; 1 to 32 of
    /// `a-z 0-9 _ -`.
    pub pop: String,
}

/// `balance`: how a request picks among the healthy origins of one failover group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// `"round_robin"`: each origin in turn, in proportion to its weight.
    #[default]
    RoundRobin,
    /// `"least_outstanding"`: the origin with the fewest requests in flight from this node.
    LeastOutstanding,
    /// `"consistent_hash"`: rendezvous hashing of the cache key, so each object has one home
    /// origin while it is healthy.
    ConsistentHash,
}

/// `[services.health]`: active health checks of the service's shields and origins.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Whether probes run. Default: on when the service has a choice of upstream (any shield, or
    /// more than one origin), off for a single origin, where the circuit breaker alone decides.
    /// See [`ServiceConfig::active_health_checks`](crate::ServiceConfig::active_health_checks).
    pub enabled: Option<bool>,
    /// Path (and query) probed with `GET`; a 2xx or 3xx response within `timeout` is a
    /// success. Default: `"/"`; starts with `/`, visible ASCII, at most 1024 bytes.
    pub path: String,
    /// Time between two probes of one upstream. Default: 5s; 100ms to 1h.
    #[serde(deserialize_with = "duration::deserialize")]
    pub interval: Duration,
    /// A probe without a response head in this time fails. Default: 2s; more than 0, at most
    /// `interval`.
    #[serde(deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
    /// Consecutive failed probes that mark a healthy upstream down. Default: 3; 1 to 100.
    pub unhealthy_threshold: u32,
    /// Consecutive successful probes that mark a down upstream up. Default: 2; 1 to 100.
    pub healthy_threshold: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            enabled: None,
            path: "/".to_owned(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            unhealthy_threshold: 3,
            healthy_threshold: 2,
        }
    }
}

/// `[services.passive]`: failure detection from real requests, one circuit breaker per upstream.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PassiveConfig {
    /// Consecutive failures (connect error, timeout, 5xx) that open an upstream's breaker: it
    /// gets no requests until `ejection` has passed. Default: 5; 1 to 1000.
    pub failure_threshold: u32,
    /// How long an opened breaker stays open before one trial request is let through. Each
    /// failed trial doubles it, up to `max_ejection`. Default: 30s; more than 0.
    #[serde(deserialize_with = "duration::deserialize")]
    pub ejection: Duration,
    /// Upper bound on the doubled open interval. Default: 5m; at least `ejection`.
    #[serde(deserialize_with = "duration::deserialize")]
    pub max_ejection: Duration,
    /// Most upstreams of one list (the service's shields, or its origins) whose open breakers
    /// keep them out at once, in percent of the healthy ones, rounded down (Envoy's
    /// `max_ejection_percent`). Past it, the upstreams ejected most recently get requests
    /// anyway. Unset: all but one, so the last usable upstream is never ejected (nginx never
    /// marks its last server down); when all would be, traffic goes to them (panic mode).
    /// 0 to 100; 100 lets every breaker eject its upstream.
    pub max_ejection_percent: Option<u8>,
    /// Whether a 5xx answer counts as a failure toward the breaker. A 5xx is the upstream's
    /// answer, not a transport failure: it reaches the client either way. Unset: counts only
    /// when the list has more than one upstream, where another one can answer instead.
    pub eject_on_5xx: Option<bool>,
}

impl Default for PassiveConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            max_ejection_percent: None,
            eject_on_5xx: None,
        }
    }
}

/// `[services.retry]`: retries of idempotent requests on another upstream.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Retries after the first try, each on another upstream when there is one; only for
    /// idempotent methods and only before any response byte reached the client. A request
    /// makes at most `1 + max_retries` tries. Default: 2; 0 (no retries) to 10.
    pub max_retries: u32,
    /// Backoff before the first retry; retry n waits a random time up to
    /// `min(max_backoff, base_backoff * 2^(n-1))` (full jitter). Default: 25ms; more than 0.
    #[serde(deserialize_with = "duration::deserialize")]
    pub base_backoff: Duration,
    /// Upper bound on one backoff. Default: 1s; at least `base_backoff`.
    #[serde(deserialize_with = "duration::deserialize")]
    pub max_backoff: Duration,
    /// Retries allowed as a fraction of requests over `budget_window`, so that retries add at
    /// most this share of load in an outage; a request over budget fails with its first error.
    /// Default: 0.2; 0.0 to 1.0.
    pub budget_ratio: f64,
    /// Window over which requests earn retries. Default: 10s; 1s to 1h.
    #[serde(deserialize_with = "duration::deserialize")]
    pub budget_window: Duration,
    /// Retries per second allowed whatever the ratio, so that a quiet service can still retry.
    /// Default: 3; 0 to 10000.
    pub budget_min_per_sec: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 2,
            base_backoff: Duration::from_millis(25),
            max_backoff: Duration::from_secs(1),
            budget_ratio: 0.2,
            budget_window: Duration::from_secs(10),
            budget_min_per_sec: 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Wrap {
        origins: Vec<OriginConfig>,
        balance: Balance,
    }

    #[test]
    fn origins_and_balance_parse() {
        let text = "balance = \"least_outstanding\"\n\
                    origins = [{ url = \"https://a.example\" }, { url = \"http://b:8080\", group = 1, weight = 3 }]\n";
        let parsed: Wrap = toml::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.balance, Balance::LeastOutstanding);
        assert_eq!(parsed.origins[0].group, 0);
        assert_eq!(parsed.origins[0].weight, 1);
        assert_eq!(parsed.origins[1].url.authority(), "b:8080");
        assert_eq!((parsed.origins[1].group, parsed.origins[1].weight), (1, 3));
    }

    #[test]
    fn balance_names() {
        let cases: &[(&str, Option<Balance>)] = &[
            ("round_robin", Some(Balance::RoundRobin)),
            ("least_outstanding", Some(Balance::LeastOutstanding)),
            ("consistent_hash", Some(Balance::ConsistentHash)),
            ("RoundRobin", None),
            ("random", None),
        ];
        for (name, expected) in cases {
            let text = format!("origins = []\nbalance = \"{name}\"\n");
            let got = toml::from_str::<Wrap>(&text).ok().map(|w| w.balance);
            assert_eq!(got, *expected, "{name}");
        }
    }
}
