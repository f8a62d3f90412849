//! When to order a certificate, renew it, or try again: pure functions of the stored state and
//! `now`, table-tested; the driver (`acme`) only carries the decisions out.
//!
//! - **Renewal** at two-thirds of the certificate's lifetime (Let's Encrypt's advice for its
//!   90-day certificates: 60 days), minus a jitter of up to a twelfth of the lifetime, so a
//!   fleet's certificates issued together do not all renew in the same minute (RFC 8555 does
//!   not say; ARI, RFC 9773, spreads renewals the same way).
//! - **Backoff** after a failed order: full-jitter exponential from `retry_min` doubling up to
//!   `retry_max`; a success resets it. A CA's rate limits (Let's Encrypt: 5 failed
//!   validations per host per hour) are thereby respected.

use std::time::Duration;

use outpost_config::Timestamp;

/// Where a service's certificate stands, as the driver stored it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// The certificate in force, if any: `(not_before, not_after)`.
    pub certificate: Option<(Timestamp, Timestamp)>,
    /// Failed orders in a row since the last success.
    pub failures: u32,
    /// When the last order failed.
    pub failed_at: Option<Timestamp>,
}

/// What the driver does for a service now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Order now: no certificate, or it is due for renewal, and no backoff holds.
    Order,
    /// Nothing until then.
    Wait(Timestamp),
}

/// Renewal time: `not_before + 2/3 lifetime - jitter × lifetime / 12`, `jitter` in 0..1.
pub fn renew_at(not_before: Timestamp, not_after: Timestamp, jitter: f64) -> Timestamp {
    let lifetime = not_after.as_millis().saturating_sub(not_before.as_millis());
    let jitter = if jitter.is_nan() { 0.0 } else { jitter.clamp(0.0, 1.0) };
    let spread = (lifetime / 12) as f64 * jitter;
    let at = not_before.as_millis().saturating_add(lifetime / 3 * 2).saturating_sub(spread as u64);
    Timestamp(at)
}

/// The wait after `failures` failed orders in a row (at least 1): up to `min × 2^(failures-1)`,
/// capped at `max`, times `jitter` in 0..1 (full jitter), but never under a tenth of `min`, so
/// a zero jitter cannot make a tight loop.
pub fn retry_after(failures: u32, min: Duration, max: Duration, jitter: f64) -> Duration {
    let factor = 1u32.checked_shl(failures.saturating_sub(1)).unwrap_or(u32::MAX);
    let cap = min.checked_mul(factor).unwrap_or(max).min(max);
    let jitter = if jitter.is_nan() { 0.0 } else { jitter.clamp(0.0, 1.0) };
    let waited = Duration::try_from_secs_f64(cap.as_secs_f64() * jitter).map_or(cap, |d| d.min(cap));
    waited.max(min / 10)
}

/// The two jitters a plan uses, each in 0..1, drawn by the caller once per certificate and
/// once per failure (kept in the stored state), so a plan is stable across calls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Jitter {
    pub renew: f64,
    pub retry: f64,
}

/// What to do for a service at `now`.
pub fn plan(standing: Standing, now: Timestamp, min: Duration, max: Duration, jitter: Jitter) -> Plan {
    let due = match standing.certificate {
        None => now,
        Some((not_before, not_after)) => renew_at(not_before, not_after, jitter.renew),
    };
    let retry = match (standing.failures, standing.failed_at) {
        (0, _) | (_, None) => Timestamp(0),
        (failures, Some(at)) => {
            let wait = retry_after(failures, min, max, jitter.retry);
            Timestamp(at.as_millis().saturating_add(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)))
        }
    };
    let at = due.max(retry);
    if at <= now { Plan::Order } else { Plan::Wait(at) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400_000;
    const MIN: Duration = Duration::from_secs(60);
    const MAX: Duration = Duration::from_secs(6 * 3600);

    #[test]
    fn renewal_is_at_two_thirds_of_the_lifetime_less_a_jitter() {
        let rows = [
            // (not_before, not_after, jitter, renew at)
            (0, 90 * DAY, 0.0, 60 * DAY), // Let's Encrypt's advice: day 60 of 90
            (0, 90 * DAY, 1.0, 60 * DAY - 90 * DAY / 12), // earliest: a twelfth earlier
            (0, 90 * DAY, 0.5, 60 * DAY - 90 * DAY / 24),
            (1_000, 61_000, 0.0, 41_000),      // Pebble's 60-second certificates: after 40 s
            (0, 90 * DAY, f64::NAN, 60 * DAY), // a bad jitter is none
            (5, 5, 0.0, 5),                    // a zero lifetime is due at once
        ];
        for (from, to, jitter, expected) in rows {
            assert_eq!(
                renew_at(Timestamp(from), Timestamp(to), jitter),
                Timestamp(expected),
                "{from}..{to} j={jitter}"
            );
        }
    }

    #[test]
    fn retries_back_off_exponentially_with_full_jitter() {
        let rows = [
            (1, 1.0, Duration::from_secs(60)),
            (2, 1.0, Duration::from_secs(120)),
            (4, 1.0, Duration::from_secs(480)),
            (30, 1.0, MAX),       // capped
            (u32::MAX, 1.0, MAX), // no overflow
            (3, 0.5, Duration::from_secs(120)),
            (3, 0.0, Duration::from_secs(6)), // never under a tenth of min
        ];
        for (failures, jitter, expected) in rows {
            assert_eq!(retry_after(failures, MIN, MAX, jitter), expected, "{failures} j={jitter}");
        }
    }

    #[test]
    fn plans_an_order_when_due_and_no_backoff_holds() {
        let none = Standing { certificate: None, failures: 0, failed_at: None };
        let fresh = Standing { certificate: Some((Timestamp(0), Timestamp(90 * DAY))), ..none };
        let failed = Standing { failures: 2, failed_at: Some(Timestamp(1_000)), ..none };
        let rows = [
            (none, 0, Plan::Order),
            (fresh, DAY, Plan::Wait(Timestamp(60 * DAY))),
            (fresh, 60 * DAY, Plan::Order),
            // Two failures: up to 2 min (jitter 1.0) after the last.
            (failed, 60_000, Plan::Wait(Timestamp(121_000))),
            (failed, 121_000, Plan::Order),
            // A renewal that failed waits for the later of the two.
            (
                Standing { failures: 1, failed_at: Some(Timestamp(60 * DAY)), ..fresh },
                60 * DAY,
                Plan::Wait(Timestamp(60 * DAY + 60_000)),
            ),
        ];
        // No renewal jitter; the longest retry wait.
        let jitter = Jitter { renew: 0.0, retry: 1.0 };
        for (standing, now, expected) in rows {
            assert_eq!(plan(standing, Timestamp(now), MIN, MAX, jitter), expected, "{standing:?} at {now}");
        }
    }
}
