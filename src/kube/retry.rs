//! Our retry policy for Kubernetes API calls.
//!
//! kube-rs's own retry layer is turned off (see [`super::client`]): it retries 429/503/504 up
//! to 15 times on its own, which hides a refusing server for minutes. Instead, idempotent
//! calls (reads, and writes that mean the same thing when repeated, such as a cordon patch)
//! go through [`with_retry`]: a few attempts with exponential backoff and jitter, only for
//! errors that are worth retrying (5xx, 429 from API priority and fairness, connection
//! resets and timeouts). Everything else is returned at once.
//!
//! Each retry is logged once, at `info` (shown with `--verbose`), saying what was retried
//! and why: `listing nodes failed (HTTP 503 Service Unavailable): retry 1 of 4 in 0.3 s`.
//! kube-rs's own log line for the same failure is shown only with `--debug`
//! (see [`crate::output::logging`]).

use super::error::{is_transient, transient_reason};
use std::future::Future;
use std::time::Duration;

/// How often and how patiently to retry a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (at least 1).
    pub attempts: u32,
    /// Delay before the second attempt; doubled each time.
    pub initial: Duration,
    /// Upper bound of one delay.
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, 250 ms doubling to at most 4 s: about 4 s of patience in total.
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            initial: Duration::from_millis(250),
            max: Duration::from_secs(4),
        }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt `n` (1-based), without jitter.
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// Run `op` with the default [`RetryPolicy`], retrying transient failures. `what` names
/// the call for the retry lines, as a gerund phrase: `listing the pods of node X`.
pub async fn with_retry<T, F, Fut>(what: &str, op: F) -> Result<T, ::kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ::kube::Error>>,
{
    with_retry_policy(RetryPolicy::default(), what, op).await
}

/// Run `op`, retrying transient failures as `policy` says, with one log line per retry
/// naming `what` and the error. The last error is returned when the attempts run out.
pub async fn with_retry_policy<T, F, Fut>(policy: RetryPolicy, what: &str, mut op: F) -> Result<T, ::kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ::kube::Error>>,
{
    let attempts = policy.attempts.max(1);
    let mut n = 0;
    loop {
        n += 1;
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if n < attempts && is_transient(&e) => {
                let delay = jitter(policy.delay(n));
                tracing::info!("{}", retry_line(what, &e, n, attempts, delay));
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The line logged for one retry: what failed, why, and when the next attempt is.
fn retry_line(what: &str, e: &::kube::Error, failed: u32, attempts: u32, delay: Duration) -> String {
    format!(
        "{what} failed ({}): retry {failed} of {} in {:.1} s",
        transient_reason(e),
        attempts - 1,
        delay.as_secs_f64()
    )
}

/// ±20 % so that parallel callers do not retry in lockstep.
fn jitter(d: Duration) -> Duration {
    use rand::Rng;
    let f: f64 = rand::rng().random_range(0.8..1.2);
    d.mul_f64(f)
}

#[cfg(test)]
mod tests {
    use super::super::error::status_code;
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn api(code: u16) -> ::kube::Error {
        ::kube::Error::Api(::kube::core::Status::failure("boom", "Boom").with_code(code).boxed())
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            initial: Duration::from_millis(1),
            max: Duration::from_millis(2),
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy {
            attempts: 10,
            initial: Duration::from_millis(100),
            max: Duration::from_millis(500),
        };
        assert_eq!(p.delay(1), Duration::from_millis(100));
        assert_eq!(p.delay(2), Duration::from_millis(200));
        assert_eq!(p.delay(3), Duration::from_millis(400));
        assert_eq!(p.delay(4), Duration::from_millis(500));
        assert_eq!(p.delay(40), Duration::from_millis(500));
    }

    #[tokio::test]
    async fn retries_transient_then_succeeds() {
        let calls = AtomicU32::new(0);
        let r = with_retry_policy(fast(), "testing", || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n < 2 {
                Err(api(503))
            } else {
                Ok(n)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 2);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn gives_up_after_the_attempts() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = with_retry_policy(fast(), "testing", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(api(504))
        })
        .await;
        assert_eq!(status_code(&r.unwrap_err()), Some(504));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn does_not_retry_permanent_errors() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = with_retry_policy(fast(), "testing", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(api(403))
        })
        .await;
        assert_eq!(status_code(&r.unwrap_err()), Some(403));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
