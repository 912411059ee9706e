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

/// The HTTP status of an API error, if the server answered.
pub fn status_code(e: &::kube::Error) -> Option<u16> {
    match e {
        ::kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// Whether an error is worth retrying for an idempotent call: 429, 500, 502, 503, 504,
/// connection resets, refused connections and timeouts. TLS and authentication failures,
/// and every other answer from the server, are not.
pub fn is_transient(e: &::kube::Error) -> bool {
    if super::client::auth_error(e).is_some() {
        return false;
    }
    match e {
        ::kube::Error::Api(s) => matches!(s.code, 429 | 500 | 502 | 503 | 504),
        ::kube::Error::HyperError(h) => !h.is_user() && !h.is_parse(),
        ::kube::Error::ReadEvents(_) => true,
        ::kube::Error::Service(_) => chain_is_transient(e),
        _ => false,
    }
}

fn chain_is_transient(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string().to_ascii_lowercase();
        if text.contains("certificate") || text.contains("invalid dns name") || text.contains("handshake") {
            return false;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if !matches!(
                io.kind(),
                ConnectionReset
                    | ConnectionAborted
                    | ConnectionRefused
                    | BrokenPipe
                    | UnexpectedEof
                    | TimedOut
                    | Interrupted
            ) {
                return false;
            }
        }
        cur = err.source();
    }
    // No TLS trouble and no permanent I/O error: a timeout from the client's timeout layer,
    // or a connection that closed before the response. Worth another try.
    true
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

/// Why a call failed, in words: the server's answer (`HTTP 503 ...`), or what happened to
/// the connection, without the client stack's layers (`ServiceError: client error
/// (SendRequest): ...`).
pub fn transient_reason(e: &::kube::Error) -> String {
    if let ::kube::Error::Api(_) = e {
        return super::client::describe_kube_error(e);
    }
    let mut innermost = e.to_string();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            let words = match io.kind() {
                ConnectionReset => "the connection was reset",
                ConnectionAborted => "the connection was aborted",
                ConnectionRefused => "the connection was refused",
                BrokenPipe => "the connection was closed while sending",
                UnexpectedEof => "the connection was closed before the answer",
                TimedOut => "no answer in time",
                _ => "",
            };
            if !words.is_empty() {
                return words.to_string();
            }
        }
        innermost = err.to_string();
        cur = err.source();
    }
    innermost
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
    fn classification() {
        for code in [429, 500, 502, 503, 504] {
            assert!(is_transient(&api(code)), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 410, 422] {
            assert!(!is_transient(&api(code)), "{code}");
        }
        let reset = ::kube::Error::Service(Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by peer",
        )));
        assert!(is_transient(&reset));
        let perm = ::kube::Error::Service(Box::new(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "nope",
        )));
        assert!(!is_transient(&perm));
        let tls = ::kube::Error::Service(Box::new(std::io::Error::other(
            "invalid peer certificate: UnknownIssuer",
        )));
        assert!(!is_transient(&tls));
    }

    #[test]
    fn reasons_in_words() {
        assert_eq!(transient_reason(&api(503)), "HTTP 503 boom");
        let io = |kind, text: &str| ::kube::Error::Service(Box::new(std::io::Error::new(kind, text.to_string())));
        assert_eq!(
            transient_reason(&io(std::io::ErrorKind::ConnectionReset, "connection reset by peer")),
            "the connection was reset"
        );
        assert_eq!(
            transient_reason(&io(
                std::io::ErrorKind::UnexpectedEof,
                "peer closed connection without sending TLS close_notify"
            )),
            "the connection was closed before the answer"
        );
        assert_eq!(
            transient_reason(&io(std::io::ErrorKind::Other, "something odd")),
            "something odd"
        );
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
