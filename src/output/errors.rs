//! How a failed run ends: the `error:` / `caused by:` / `hint:` lines on stderr, and the
//! process exit code.
//!
//! # Exit codes
//!
//! | code | meaning |
//! |-----:|---------|
//! | 0 | success |
//! | 1 | failure (anything not listed below) |
//! | 2 | bad usage or input: a bad flag, a bad `--query`, a bad `--ssh-jump`, … |
//! | 3 | the cluster, resource group or subscription was not found |
//! | 4 | authentication or authorization failed (Azure, Kubernetes or SSH credentials) |
//! | 5 | some nodes failed (`scan`), or the rollout halted on a node (`apply`) |
//! | 6 | the `--fail-on` condition was met (`scan`) |
//! | 7 | the cluster's patch lock is held by someone else |
//! | 130 | interrupted (Ctrl-C) |
//!
//! Any layer can attach an exit code ([`ErrorExt::with_exit`], [`Failure`]) or a hint
//! ([`ErrorExt::with_hint`], [`Hinted`]) to an error; both wrappers are transparent: the
//! messages of the error chain stay exactly what they were.

use std::error::Error as StdError;
use std::fmt;

/// The process exit codes of aks-patch (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exit {
    /// 0: success.
    Ok,
    /// 1: failure not covered by another code.
    Failure,
    /// 2: bad usage or input.
    Usage,
    /// 3: cluster, resource group or subscription not found.
    NotFound,
    /// 4: authentication or authorization failed.
    Auth,
    /// 5: some nodes failed (scan), or the rollout halted on a node (apply).
    NodesFailed,
    /// 6: the `--fail-on` condition was met.
    FailOn,
    /// 7: the patch lock is held by someone else.
    LockHeld,
    /// 130: interrupted.
    Interrupted,
    /// 8: outside the maintenance window (`--window`): nothing started, or the run stopped
    /// at a safe point when its window closed.
    OutsideWindow,
    /// 9: a blocker (`--blocking-pod-selector`, a Prometheus alert) held the rollout past
    /// `--blocker-wait`; it stopped at a safe point.
    Blocked,
}

impl Exit {
    /// The numeric process exit code.
    pub fn code(self) -> i32 {
        match self {
            Exit::Ok => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::NotFound => 3,
            Exit::Auth => 4,
            Exit::NodesFailed => 5,
            Exit::FailOn => 6,
            Exit::LockHeld => 7,
            Exit::Interrupted => 130,
            Exit::OutsideWindow => 8,
            Exit::Blocked => 9,
        }
    }
}

/// A failure with its own message and exit code, optionally a hint and a cause: for the
/// conditions a command detects itself (e.g. "cluster not found", "lock held by …").
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
    pub hint: Option<String>,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure {
            exit,
            message: message.into(),
            hint: None,
            source: None,
        }
    }

    /// Add a `hint:` line.
    pub fn hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }

    /// Add the cause (printed as `caused by:`).
    pub fn caused_by(mut self, source: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Failure {
        self.source = Some(source.into());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for Failure {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn StdError + 'static))
    }
}

/// An error with a `hint:` attached. Transparent: displays as the wrapped error and has
/// the same causes. Made by [`ErrorExt::with_hint`] or [`Hinted::new`].
#[derive(Debug)]
pub struct Hinted {
    pub hint: String,
    inner: anyhow::Error,
}

impl Hinted {
    /// A new error with this message and hint.
    pub fn new(message: impl fmt::Display + fmt::Debug + Send + Sync + 'static, hint: impl Into<String>) -> Hinted {
        Hinted {
            hint: hint.into(),
            inner: anyhow::Error::msg(message),
        }
    }

    /// Wrap an existing error.
    pub fn wrap(err: impl Into<anyhow::Error>, hint: impl Into<String>) -> Hinted {
        Hinted {
            hint: hint.into(),
            inner: err.into(),
        }
    }
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.inner, f)
    }
}

impl StdError for Hinted {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        let inner: &(dyn StdError + 'static) = &*self.inner;
        inner.source()
    }
}

/// An error with an exit code attached. Transparent like [`Hinted`]. Made by
/// [`ErrorExt::with_exit`] or [`WithExit::wrap`].
#[derive(Debug)]
pub struct WithExit {
    pub exit: Exit,
    inner: anyhow::Error,
}

impl WithExit {
    pub fn wrap(err: impl Into<anyhow::Error>, exit: Exit) -> WithExit {
        WithExit {
            exit,
            inner: err.into(),
        }
    }
}

impl fmt::Display for WithExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.inner, f)
    }
}

impl StdError for WithExit {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        let inner: &(dyn StdError + 'static) = &*self.inner;
        inner.source()
    }
}

/// Attach a hint or an exit code to the error of any `Result`, at any layer.
///
/// ```
/// use aks_patch::output::errors::{ErrorExt, Exit, exit_code, render_error};
/// let r: Result<(), std::io::Error> = Err(std::io::Error::other("no such cluster"));
/// let err = r.with_exit(Exit::NotFound).with_hint("list clusters with `az aks list -o table`").unwrap_err();
/// assert_eq!(exit_code(&err), 3);
/// assert!(render_error(&err).contains("hint: list clusters"));
/// ```
pub trait ErrorExt<T> {
    fn with_hint(self, hint: impl Into<String>) -> anyhow::Result<T>;
    fn with_exit(self, exit: Exit) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> ErrorExt<T> for Result<T, E> {
    fn with_hint(self, hint: impl Into<String>) -> anyhow::Result<T> {
        self.map_err(|e| Hinted::wrap(e, hint).into())
    }

    fn with_exit(self, exit: Exit) -> anyhow::Result<T> {
        self.map_err(|e| WithExit::wrap(e, exit).into())
    }
}

/// One error of the chain, as [`render_error`] and [`exit_code`] see it.
struct Layer {
    /// Its message; `None` for the transparent wrappers ([`Hinted`], [`WithExit`]).
    text: Option<String>,
    hint: Option<String>,
    exit: Option<Exit>,
}

/// Walk the error chain, looking inside the transparent wrappers (whose own `source()`
/// skips the error they wrap, so that `chain()` alone would not see a wrapper inside a
/// wrapper).
fn layers(err: &anyhow::Error) -> Vec<Layer> {
    let mut out = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = Some(&**err);
    while let Some(e) = cur {
        if out.len() > 64 {
            break;
        }
        if let Some(h) = e.downcast_ref::<Hinted>() {
            out.push(Layer {
                text: None,
                hint: Some(h.hint.clone()),
                exit: None,
            });
            cur = Some(&*h.inner);
            continue;
        }
        if let Some(w) = e.downcast_ref::<WithExit>() {
            out.push(Layer {
                text: None,
                hint: None,
                exit: Some(w.exit),
            });
            cur = Some(&*w.inner);
            continue;
        }
        let (hint, exit) = if let Some(f) = e.downcast_ref::<Failure>() {
            (f.hint.clone(), Some(f.exit))
        } else if e.downcast_ref::<super::OutputError>().is_some()
            || matches!(
                e.downcast_ref::<crate::ssh::SshError>(),
                Some(crate::ssh::SshError::Config(_))
            )
        {
            (None, Some(Exit::Usage))
        } else {
            (None, None)
        };
        // kube-rs shows an API error with the `Debug` of its Status: tell its message instead.
        let text = match e.downcast_ref::<::kube::Error>() {
            Some(k) => crate::kube::error::describe_kube_error(k),
            None => e.to_string(),
        };
        out.push(Layer {
            text: Some(text),
            hint,
            exit,
        });
        cur = e.source();
    }
    out
}

/// The `hint:` texts found along the error chain, outermost first, without duplicates.
pub fn hints(err: &anyhow::Error) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for h in layers(err).into_iter().filter_map(|l| l.hint) {
        if !out.contains(&h) {
            out.push(h);
        }
    }
    out
}

/// Render a top-level error for stderr:
///
/// ```text
/// error: <message>
/// caused by: <cause>        (one line per cause in the chain)
/// hint: <hint>              (when some layer attached one)
/// ```
///
/// A cause whose text is already part of the line before it is not repeated.
pub fn render_error(err: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut previous: Option<String> = None;
    for text in layers(err).into_iter().filter_map(|l| l.text) {
        let text = text.trim().to_string();
        match &previous {
            None => {
                out.push_str("error: ");
                out.push_str(&text);
                out.push('\n');
            }
            Some(p) if text.is_empty() || p.contains(&text) => {}
            Some(_) => {
                out.push_str("caused by: ");
                out.push_str(&text);
                out.push('\n');
            }
        }
        previous = Some(text);
    }
    for h in hints(err) {
        out.push_str("hint: ");
        out.push_str(&h);
        out.push('\n');
    }
    out
}

/// The exit code for an error: the outermost exit code attached along the chain
/// ([`WithExit`], [`Failure`]; an [`OutputError`](super::OutputError) or an
/// [`SshError::Config`](crate::ssh::SshError::Config) is a usage error), else 1.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    exit_of(err).code()
}

/// As [`exit_code`], as an [`Exit`].
pub fn exit_of(err: &anyhow::Error) -> Exit {
    layers(err).into_iter().find_map(|l| l.exit).unwrap_or(Exit::Failure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[derive(Debug, thiserror::Error)]
    #[error("connection refused")]
    struct Refused;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot reach the API server")]
    struct Outer(#[source] Refused);

    #[test]
    fn codes_are_documented_values() {
        let all = [
            (Exit::Ok, 0),
            (Exit::Failure, 1),
            (Exit::Usage, 2),
            (Exit::NotFound, 3),
            (Exit::Auth, 4),
            (Exit::NodesFailed, 5),
            (Exit::FailOn, 6),
            (Exit::LockHeld, 7),
            (Exit::Interrupted, 130),
            (Exit::OutsideWindow, 8),
            (Exit::Blocked, 9),
        ];
        for (e, c) in all {
            assert_eq!(e.code(), c, "{e:?}");
        }
    }

    #[test]
    fn an_api_servers_refusal_is_told_by_its_message_never_as_a_status_structure() {
        let status = ::kube::core::Status::failure("pods \"x\" is forbidden: exec into pods is denied", "Forbidden")
            .with_code(403)
            .boxed();
        let err = anyhow::Error::new(::kube::Error::Api(status)).context("exec into the node-shell pod failed");
        let text = render_error(&err);
        assert!(!text.contains("Status {"), "{text}");
        assert!(
            text.contains("HTTP 403 pods \"x\" is forbidden: exec into pods is denied"),
            "{text}"
        );
    }

    #[test]
    fn chain_and_hint_are_rendered() {
        let r: Result<(), Outer> = Err(Outer(Refused));
        let err = r
            .with_hint("is the cluster private? use --ssh-jump")
            .context("listing nodes of aks-shop-prod")
            .unwrap_err();
        assert_eq!(
            render_error(&err),
            "error: listing nodes of aks-shop-prod\ncaused by: cannot reach the API server\ncaused by: connection refused\nhint: is the cluster private? use --ssh-jump\n"
        );
        assert_eq!(exit_code(&err), 1);
    }

    #[test]
    fn exit_code_is_found_through_context_and_outermost_wins() {
        let r: Result<(), Refused> = Err(Refused);
        let err = r.with_exit(Exit::Auth).context("getting a token").unwrap_err();
        assert_eq!(exit_code(&err), 4);
        // The wrapper is transparent: no extra line.
        assert_eq!(
            render_error(&err),
            "error: getting a token\ncaused by: connection refused\n"
        );
        let err = Err::<(), _>(err).with_exit(Exit::NodesFailed).unwrap_err();
        assert_eq!(exit_code(&err), 5);
    }

    #[test]
    fn failure_carries_code_hint_and_cause() {
        let f = Failure::new(Exit::NotFound, "cluster aks-x not found in resource group rg-x")
            .hint("check the name with `az aks list -g rg-x -o table`")
            .caused_by(Refused);
        let err = anyhow::Error::from(f);
        assert_eq!(exit_code(&err), 3);
        assert_eq!(
            render_error(&err),
            "error: cluster aks-x not found in resource group rg-x\ncaused by: connection refused\nhint: check the name with `az aks list -g rg-x -o table`\n"
        );
    }

    #[test]
    fn wrappers_inside_wrappers_are_seen() {
        let r: Result<(), Refused> = Err(Refused);
        let err = r
            .with_exit(Exit::NotFound)
            .with_hint("first")
            .with_hint("second")
            .context("outer")
            .unwrap_err();
        assert_eq!(exit_code(&err), 3);
        assert_eq!(
            render_error(&err),
            "error: outer\ncaused by: connection refused\nhint: second\nhint: first\n"
        );
        let err = anyhow::Error::from(crate::output::OutputError::Query {
            expression: "[".into(),
            reason: "bad".into(),
        });
        assert_eq!(exit_code(&err), 2);
    }

    #[test]
    fn repeated_cause_text_is_not_repeated() {
        let err = anyhow::Error::from(Refused).context("connection refused");
        assert_eq!(render_error(&err), "error: connection refused\n");
    }

    #[test]
    fn hinted_new_makes_a_fresh_error() {
        let err = anyhow::Error::from(Hinted::new(
            "no Linux nodes",
            "Windows pools are patched by node image upgrade",
        ));
        assert_eq!(
            render_error(&err),
            "error: no Linux nodes\nhint: Windows pools are patched by node image upgrade\n"
        );
        assert_eq!(exit_code(&err), 1);
    }
}
