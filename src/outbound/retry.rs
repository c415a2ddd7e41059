//! Retry decisions: whether an answer is a success, the delay before the next attempt
//! (scheduled, jittered, or the receiver's `Retry-After`). The policies themselves, and the
//! providers' documented schedules, are configuration: `config::retry`.

use std::time::Duration;

use super::deliver::Outcome;
use crate::config::RetryPolicy;
use crate::store::queue::Next;

impl RetryPolicy {
    pub fn is_success(&self, status: u16) -> bool {
        match &self.success_status {
            Some(list) => list.contains(&status),
            None => (200..300).contains(&status),
        }
    }

    /// The delay after failed attempt number `attempt` (1-based), or `None` when no attempt
    /// is left. A receiver's `Retry-After` replaces the schedule, up to `max_retry_after`.
    pub fn next_delay(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let scheduled = self
            .schedule
            .get(attempt as usize - 1)
            .or(self.schedule.last())
            .copied()
            .unwrap_or(Duration::ZERO);
        Some(retry_after.map_or_else(
            || self.jittered(scheduled),
            |wait| wait.min(self.max_retry_after),
        ))
    }

    fn jittered(&self, delay: Duration) -> Duration {
        if self.jitter == 0 || delay.is_zero() {
            return delay;
        }
        use ring::rand::SecureRandom;
        let mut byte = [0u8; 2];
        let _ = ring::rand::SystemRandom::new().fill(&mut byte);
        // A factor in [1 - jitter, 1 + jitter].
        let unit = f64::from(u16::from_le_bytes(byte)) / f64::from(u16::MAX) * 2.0 - 1.0;
        delay.mul_f64(1.0 + unit * f64::from(self.jitter) / 100.0)
    }
}

/// What follows attempt number `attempt` of a round, by the endpoint's policy; retry
/// delays are multiplied by `time_scale`.
pub fn next_step(
    policy: &RetryPolicy,
    attempt: u32,
    outcome: &Outcome,
    time_scale: f64,
    now_ms: u64,
) -> Next {
    if outcome.success {
        return Next::Delivered;
    }
    if outcome.gone || outcome.refused || outcome.final_answer {
        return Next::Dead;
    }
    match policy.next_delay(attempt, outcome.retry_after) {
        Some(delay) => Next::RetryAt(now_ms + (delay.as_millis() as f64 * time_scale) as u64),
        None => Next::Dead,
    }
}

/// `Retry-After` as delta seconds or an HTTP date, relative to `now` (unix seconds).
pub fn parse_retry_after(value: &str, now: u64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // IMF-fixdate, and the two obsolete forms recipients must accept (RFC 9110 §5.6.7).
    let when = httpdate::parse_http_date(value).ok()?;
    let when = when.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(when.saturating_sub(now)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::retry::{preset, PRESETS};

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn presets_follow_the_documented_schedules() {
        let rejento = preset("rejento").unwrap();
        let delays: Vec<_> = (1..10).map_while(|a| rejento.next_delay(a, None)).collect();
        assert_eq!(
            delays,
            [s(30), s(120), s(600), s(3600)],
            "5 attempts: 4 delays"
        );
        let tenzo = preset("tenzo").unwrap();
        assert!(!tenzo.is_success(203));
        assert!(tenzo.is_success(204));
        let jobylon = preset("jobylon").unwrap();
        let delays: Vec<_> = (1..10).map_while(|a| jobylon.next_delay(a, None)).collect();
        assert_eq!(delays, [s(10), s(100), s(1000)]);
        for name in PRESETS {
            let p = preset(name).unwrap();
            assert!(p.max_attempts as usize <= p.schedule.len() + 1, "{name}");
        }
    }

    #[test]
    fn jitter_spreads_delays_within_its_bounds() {
        let policy = RetryPolicy {
            jitter: 20,
            ..preset("jobylon").unwrap()
        };
        let delays: Vec<_> = (0..200)
            .map(|_| policy.next_delay(1, None).unwrap())
            .collect();
        assert!(
            delays.iter().all(|d| *d >= s(8) && *d <= s(12)),
            "within 10 s ± 20%"
        );
        assert!(delays.iter().any(|d| *d != delays[0]), "and they vary");
        assert_eq!(
            policy.next_delay(1, Some(s(42))),
            Some(s(42)),
            "Retry-After is kept as is"
        );
    }

    #[test]
    fn retry_after_wins_up_to_the_cap() {
        let policy = preset("jobylon").unwrap();
        assert_eq!(policy.next_delay(1, Some(s(42))), Some(s(42)));
        assert_eq!(policy.next_delay(1, Some(s(99_999))), Some(s(3600)));
        assert_eq!(parse_retry_after("120", 0), Some(s(120)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_700),
            Some(s(77))
        );
        assert_eq!(parse_retry_after("soon", 0), None);
    }
}
