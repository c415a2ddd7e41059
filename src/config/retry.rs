//! Retry policies: the delays between attempts, how many attempts, what counts as
//! success, and the providers' documented schedules as presets. What is decided with a
//! policy at delivery time is in `outbound::retry`.

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

/// The providers' documented schedules, as their public documentation gives them.
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
