//! Full-jitter exponential backoff, shared by the upstream client's retries and the agent's
//! reconnects to the control plane.

use std::time::Duration;

/// Full-jitter exponential backoff before retry number `retry` (1 for the first retry):
/// `jitter * min(max, base * 2^(retry - 1))`, with `jitter` drawn by the caller from 0..=1
/// (values outside are clamped, NaN counts as 0). Retry 0 (the first try) waits nothing.
/// ("Exponential Backoff And Jitter", AWS Architecture Blog, 2015.)
pub fn backoff(retry: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    if retry == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32.checked_shl(retry - 1).unwrap_or(u32::MAX);
    let cap = base.checked_mul(factor).unwrap_or(max).min(max);
    let jitter = if jitter.is_nan() { 0.0 } else { jitter.clamp(0.0, 1.0) };
    // Not `mul_f64`: rounding can push a cap near Duration::MAX over it, and that panics.
    Duration::try_from_secs_f64(cap.as_secs_f64() * jitter).map_or(cap, |d| d.min(cap))
}

/// A number in 0..1 for backoff jitter; not cryptographic.
pub fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_full_jitter_exponential() {
        let ms = Duration::from_millis;
        let (base, max) = (ms(25), ms(1000));
        let cases = [
            (0, 1.0, ms(0)),     // the first try does not wait
            (1, 1.0, ms(25)),    // base
            (2, 1.0, ms(50)),    // base * 2
            (3, 1.0, ms(100)),   // base * 4
            (3, 0.5, ms(50)),    // jitter scales
            (3, 0.0, ms(0)),     // jitter 0 waits nothing
            (6, 1.0, ms(800)),   // base * 32
            (7, 1.0, ms(1000)),  // capped at max
            (40, 1.0, ms(1000)), // the shift overflows: still max
            (2, 7.0, ms(50)),    // jitter above 1 is clamped
            (2, -1.0, ms(0)),    // below 0 is clamped
            (2, f64::NAN, ms(0)),
            (u32::MAX, 1.0, ms(1000)),
        ];
        for (retry, jitter, expected) in cases {
            assert_eq!(backoff(retry, base, max, jitter), expected, "retry {retry}, jitter {jitter}");
        }
        assert_eq!(backoff(3, Duration::MAX, Duration::MAX, 1.0), Duration::MAX, "no overflow");
    }
}
