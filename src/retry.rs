//! One retry policy for every outbound call: Kubernetes API calls, commands on a node whose
//! connection was cut, ARM requests, webhook deliveries and Pushgateway pushes.
//!
//! A failure is retried only when it is worth another try (the caller says so through
//! [`Retryable`], or per attempt to [`Backoff::after`]): exponential backoff with jitter, for
//! at most a number of attempts and a time ([`RetryPolicy`]). Calls with a plain outcome go
//! through [`with_retry`]; loops with outcomes of their own (an eviction's 429 is a
//! PodDisruptionBudget refusing, not a busy server; an exec stream) drive a [`Backoff`]
//! themselves.
//!
//! Each retry is logged once, at `info` (shown with `--verbose`), saying what was retried
//! and why: `listing nodes failed (HTTP 503 Service Unavailable): retry 1 (retrying for up
//! to 45s) in 0.3 s`.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// How often and how patiently to retry a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (at least 1); `u32::MAX`: as many as the
    /// patience allows.
    pub attempts: u32,
    /// Delay before the second attempt; doubled each time.
    pub initial: Duration,
    /// Upper bound of one delay (a delay the server asks for may be longer).
    pub max: Duration,
    /// No attempt is started once this much time has passed since the first one.
    pub patience: Duration,
}

/// How long the default policy keeps retrying: about as long as the aks-patch lock (a Lease
/// of 60 s renewed every 20 s) survives without a renewal, long enough for an API server
/// restart or a control-plane upgrade's blip, short enough that a dead server is named
/// within a minute.
pub const PATIENCE: Duration = Duration::from_secs(45);

impl Default for RetryPolicy {
    /// 250 ms doubling to at most 1 s (as client-go honours the API server's `Retry-After: 1`),
    /// for up to [`PATIENCE`].
    fn default() -> Self {
        RetryPolicy {
            attempts: u32::MAX,
            initial: Duration::from_millis(250),
            max: Duration::from_secs(1),
            patience: PATIENCE,
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

/// An error that knows whether the same call is worth another try, and says why it failed
/// in words for the retry line.
pub trait Retryable {
    /// Another attempt may succeed (a busy or restarting server, a cut connection).
    fn is_transient(&self) -> bool;
    /// Why the attempt failed, in words (never a secret such as a URL with a token).
    fn retry_reason(&self) -> String;
}

/// The retries of one call: the single place that decides whether a failure is retried,
/// after how long, and says so. [`with_retry`] drives it for plain calls; loops with their
/// own outcomes call [`Backoff::after`] themselves.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    started: tokio::time::Instant,
    failed: u32,
}

impl Backoff {
    pub fn new(policy: RetryPolicy) -> Backoff {
        Backoff {
            policy,
            started: tokio::time::Instant::now(),
            failed: 0,
        }
    }

    /// After a failed attempt of `what` (`transient`: worth another try; `reason`: why it
    /// failed, in words): the delay before the next attempt, logged once at `info`, or
    /// `None` to give up (not transient, attempts or patience used up).
    pub fn after(&mut self, what: &str, transient: bool, reason: &dyn Display) -> Option<Duration> {
        self.after_asked(what, transient, reason, None)
    }

    /// [`Backoff::after`] for an error that judges itself.
    pub fn after_error(&mut self, what: &str, e: &impl Retryable) -> Option<Duration> {
        self.after(what, e.is_transient(), &e.retry_reason())
    }

    /// [`Backoff::after`] when the server named the delay itself (`Retry-After`): that one
    /// is waited (within the patience) instead of the policy's.
    pub fn after_asked(
        &mut self,
        what: &str,
        transient: bool,
        reason: &dyn Display,
        asked: Option<Duration>,
    ) -> Option<Duration> {
        self.failed += 1;
        if !transient || self.failed >= self.policy.attempts.max(1) {
            return None;
        }
        let delay = asked.unwrap_or_else(|| jitter(self.policy.delay(self.failed)));
        if self.started.elapsed().saturating_add(delay) > self.policy.patience {
            tracing::debug!(
                "not retrying {what}: waiting {:.1} s would pass the {} s allowed",
                delay.as_secs_f64(),
                self.policy.patience.as_secs()
            );
            return None;
        }
        tracing::info!("{}", self.retry_line(what, reason, delay));
        Some(delay)
    }

    /// How many attempts failed so far.
    pub fn failures(&self) -> u32 {
        self.failed
    }

    /// Start over: the call got through (an eviction that a budget then refused).
    pub fn reset(&mut self) {
        *self = Backoff::new(self.policy);
    }

    /// The line logged for one retry: what failed, why, and when the next attempt is.
    fn retry_line(&self, what: &str, reason: &dyn Display, delay: Duration) -> String {
        let limit = if self.policy.attempts == u32::MAX {
            format!("(retrying for up to {}s)", self.policy.patience.as_secs())
        } else {
            format!("of {}", self.policy.attempts - 1)
        };
        format!(
            "{what} failed ({reason}): retry {} {limit} in {:.1} s",
            self.failed,
            delay.as_secs_f64()
        )
    }
}

/// Run `op` with the default [`RetryPolicy`], retrying transient failures. `what` names
/// the call for the retry lines, as a gerund phrase: `listing the pods of node X`.
pub async fn with_retry<T, E, F, Fut>(what: &str, op: F) -> Result<T, E>
where
    E: Retryable,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    with_retry_policy(RetryPolicy::default(), what, op).await
}

/// Run `op`, retrying transient failures as `policy` says, with one log line per retry
/// naming `what` and the error. The last error is returned when the retries run out.
pub async fn with_retry_policy<T, E, F, Fut>(policy: RetryPolicy, what: &str, mut op: F) -> Result<T, E>
where
    E: Retryable,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::new(policy);
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) => match backoff.after_error(what, &e) {
                Some(delay) => tokio::time::sleep(delay).await,
                None => return Err(e),
            },
        }
    }
}

/// ±20 % so that parallel callers do not retry in lockstep.
fn jitter(d: Duration) -> Duration {
    use rand::Rng;
    let f: f64 = rand::rng().random_range(0.8..1.2);
    d.mul_f64(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A failure that is transient or not, as the test says.
    #[derive(Debug, PartialEq)]
    struct Failure {
        transient: bool,
    }

    impl Retryable for Failure {
        fn is_transient(&self) -> bool {
            self.transient
        }
        fn retry_reason(&self) -> String {
            "boom".into()
        }
    }

    const BUSY: Failure = Failure { transient: true };
    const REFUSED: Failure = Failure { transient: false };

    fn fast() -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            initial: Duration::from_millis(1),
            max: Duration::from_millis(2),
            patience: Duration::from_secs(60),
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy {
            attempts: 10,
            initial: Duration::from_millis(100),
            max: Duration::from_millis(500),
            patience: Duration::from_secs(60),
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
                Err(BUSY)
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
            Err(BUSY)
        })
        .await;
        assert_eq!(r.unwrap_err(), BUSY);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn does_not_retry_permanent_errors() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = with_retry_policy(fast(), "testing", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(REFUSED)
        })
        .await;
        assert_eq!(r.unwrap_err(), REFUSED);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_default_policy_outlasts_thirty_failures_in_a_row() {
        // An API server restarting: 30 answers of 503 (or resets) in a row, one caller.
        let calls = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let r = with_retry("testing", || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n < 30 {
                Err(BUSY)
            } else {
                Ok(n)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 30);
        assert!(start.elapsed() < PATIENCE, "{:?}", start.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn the_default_policy_gives_up_after_its_patience() {
        let calls = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let r: Result<(), _> = with_retry("testing", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(BUSY)
        })
        .await;
        assert_eq!(r.unwrap_err(), BUSY);
        let took = start.elapsed();
        assert!(took <= PATIENCE && took > PATIENCE - Duration::from_secs(2), "{took:?}");
        assert!(calls.load(Ordering::SeqCst) > 30);
    }

    #[tokio::test(start_paused = true)]
    async fn no_attempt_starts_after_the_patience_even_after_a_slow_failure() {
        // A call that hangs until the client's timeout uses the patience up at once.
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = with_retry("testing", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(PATIENCE).await;
            Err(BUSY)
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_delay_the_server_asks_for_is_waited_within_the_patience() {
        let mut b = Backoff::new(fast());
        let asked = Duration::from_secs(7);
        assert_eq!(b.after_asked("testing", true, &"HTTP 429", Some(asked)), Some(asked));
        let too_long = Duration::from_secs(61);
        assert_eq!(b.after_asked("testing", true, &"HTTP 429", Some(too_long)), None);
        assert_eq!(b.failures(), 2);
    }

    #[test]
    fn a_patience_without_bound_does_not_overflow() {
        let mut b = Backoff::new(RetryPolicy {
            patience: Duration::MAX,
            ..fast()
        });
        assert!(b
            .after_asked("testing", true, &"HTTP 503", Some(Duration::MAX))
            .is_some());
    }

    #[test]
    fn backoff_retries_only_what_is_transient_and_starts_over_when_reset() {
        let mut b = Backoff::new(fast());
        assert!(b.after_error("testing", &BUSY).is_some());
        assert!(b.after_error("testing", &BUSY).is_some());
        assert!(b.after_error("testing", &BUSY).is_some());
        assert!(
            b.after_error("testing", &BUSY).is_none(),
            "the 4th attempt was the last"
        );
        b.reset();
        assert!(Backoff::new(fast()).after_error("testing", &REFUSED).is_none());
        assert!(b.after("testing", true, &"the exec stream was cut").is_some());
        assert!(b.after("testing", false, &"exit code 1").is_none());
    }

    #[test]
    fn a_retry_line_says_what_why_and_how_long_it_keeps_trying() {
        let mut b = Backoff::new(RetryPolicy::default());
        b.failed = 2;
        let line = b.retry_line("listing nodes", &"HTTP 503 boom", Duration::from_millis(500));
        assert_eq!(
            line,
            "listing nodes failed (HTTP 503 boom): retry 2 (retrying for up to 45s) in 0.5 s"
        );
        let mut b = Backoff::new(fast());
        b.failed = 1;
        let line = b.retry_line("sending", &"HTTP 500", Duration::from_millis(500));
        assert_eq!(line, "sending failed (HTTP 500): retry 1 of 3 in 0.5 s");
    }
}
