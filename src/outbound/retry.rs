//! Retry policies: the delays between attempts, how many attempts, what counts as
//! success, and the providers' documented schedules as presets.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before attempt 2, 3, ...; the last delay repeats if attempts remain.
    pub schedule: Vec<Duration>,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Per attempt: connect, send and the receiver's answer.
    pub timeout: Duration,
    /// Statuses that mean delivered; `None` means any 2xx.
    pub success_status: Option<Vec<u16>>,
    /// A receiver's `Retry-After` is honoured up to this.
    pub max_retry_after: Duration,
    /// Scheduled delays vary by up to this percentage either way, so a burst of failures
    /// does not come back as a burst of retries. A receiver's `Retry-After` is kept as is.
    pub jitter: u32,
}

const fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// The providers' documented schedules (`../shared/research/signature-schemes.md`).
pub fn preset(name: &str) -> Option<RetryPolicy> {
    let policy = |schedule: &[Duration],
                  max_attempts: u32,
                  timeout: Duration,
                  success: Option<&[u16]>| RetryPolicy {
        schedule: schedule.to_vec(),
        max_attempts,
        timeout,
        success_status: success.map(<[u16]>::to_vec),
        max_retry_after: s(3600),
        jitter: 0,
    };
    Some(match name {
        // Spec example: immediately, 5s, 5m, 30m, 2h, 5h, 10h, 14h, 20h, 24h.
        "standard-webhooks" => policy(
            &[
                s(5),
                s(300),
                s(1800),
                s(7200),
                s(18000),
                s(36000),
                s(50400),
                s(72000),
                s(86400),
            ],
            10,
            s(30),
            None,
        ),
        // Svix: immediately, 5s, 5m, 30m, 2h, 5h, 10h, 10h.
        "svix" => policy(
            &[s(5), s(300), s(1800), s(7200), s(18000), s(36000), s(36000)],
            8,
            s(15),
            None,
        ),
        // Rejento lists six delays but caps at 5 attempts; both are kept, the cap wins.
        "rejento" => policy(
            &[s(30), s(120), s(600), s(3600), s(21600), s(86400)],
            5,
            s(30),
            None,
        ),
        "100hires" => policy(&[s(60), s(300), s(1800), s(7200), s(43200)], 6, s(30), None),
        "tenzo" => policy(&[s(0), s(2), s(4)], 4, s(30), Some(&[200, 201, 202, 204])),
        "jobylon" => policy(&[s(10), s(100), s(1000)], 4, s(30), None),
        _ => return None,
    })
}

pub const PRESETS: &[&str] = &[
    "standard-webhooks",
    "svix",
    "rejento",
    "100hires",
    "tenzo",
    "jobylon",
];

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

/// `Retry-After` as delta seconds or an HTTP date, relative to `now` (unix seconds).
pub fn parse_retry_after(value: &str, now: u64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate(value)?;
    Some(Duration::from_secs(when.saturating_sub(now)))
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) to unix seconds.
fn httpdate(value: &str) -> Option<u64> {
    let parts: Vec<&str> = value.split([' ', ':']).collect();
    let [_, day, month, year, hour, minute, second, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? as u64 + 1;
    let (day, year): (u64, u64) = (day.parse().ok()?, year.parse().ok()?);
    let (hour, minute, second): (u64, u64, u64) = (
        hour.parse().ok()?,
        minute.parse().ok()?,
        second.parse().ok()?,
    );
    if !(1970..=9999).contains(&year)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

#[cfg(test)]
mod tests {
    use super::*;

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
