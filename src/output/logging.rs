//! tracing to stderr, at the level the global flags ask for.
//!
//! | flags | filter |
//! |---|---|
//! | (none) | `off,aks_patch=warn` |
//! | `--verbose` | `off,aks_patch=info` |
//! | `--debug` | `warn,aks_patch=debug,kube=info,kube_client=info,reqwest=info,azure_core=info,azure_identity=info` |
//! | `--only-show-errors` | `off,aks_patch=error` |
//!
//! Only `--debug` lets the dependencies' own log lines through (kube-rs, hyper, reqwest,
//! rustls, azure_core...): they speak of their internals (`failed with error client error
//! (SendRequest)`), once per failed attempt, whether or not the call then succeeds. What a
//! user needs from a failed attempt is ours to say: the retry loops
//! ([`crate::retry`], [`crate::azure::arm`]) log one line per retry, at `info`
//! (`--verbose`), naming what was retried and why; a call that finally fails is an error
//! with that context.
//!
//! `AKS_PATCH_LOG` (an `EnvFilter` directive such as `aks_patch::ssh=trace`) overrides them.
//!
//! Nothing here logs request headers or bodies: tokens and kubeconfigs never reach the
//! log. Code that logs must not put them in messages either.

use super::reporter::Reporter;
use std::io::{IsTerminal, Write};
use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// The environment variable that overrides the log filter (read by [`crate::settings`]).
pub const LOG_ENV: &str = crate::settings::env::LOG;

/// The filter directives for the global flags (without `AKS_PATCH_LOG`).
pub fn default_directives(verbose: bool, debug: bool, only_errors: bool) -> &'static str {
    if only_errors {
        "off,aks_patch=error"
    } else if debug {
        "warn,aks_patch=debug,kube=info,kube_client=info,reqwest=info,azure_core=info,azure_identity=info"
    } else if verbose {
        "off,aks_patch=info"
    } else {
        "off,aks_patch=warn"
    }
}

/// Install the global tracing subscriber (stderr, around `reporter`'s bars). Calling it again
/// does nothing. `log_filter` is `AKS_PATCH_LOG` and `no_color` whether `NO_COLOR` is set, as
/// [`crate::settings::Settings`] read them.
pub fn init(
    verbose: bool,
    debug: bool,
    only_errors: bool,
    log_filter: Option<&str>,
    no_color: bool,
    reporter: &Reporter,
) {
    let defaults = default_directives(verbose, debug, only_errors);
    let (filter, bad_env) = match log_filter {
        Some(v) if !v.trim().is_empty() => match EnvFilter::try_new(v) {
            Ok(f) => (f, None),
            Err(e) => (
                EnvFilter::new(defaults),
                Some(format!(
                    "{LOG_ENV}={v:?} is not a valid filter ({e}); using the defaults"
                )),
            ),
        },
        _ => (EnvFilter::new(defaults), None),
    };
    let ansi = std::io::stderr().is_terminal() && !no_color;
    let writer = StderrAroundBar {
        reporter: reporter.clone(),
    };
    let installed = subscriber(filter, writer, ansi, debug).try_init().is_ok();
    if installed {
        if let Some(msg) = bad_env {
            tracing::warn!("{msg}");
        }
    }
}

/// The subscriber [`init`] installs, writing to `writer`: time stamps and targets only with
/// `--debug`.
fn subscriber<W>(filter: EnvFilter, writer: W, ansi: bool, debug: bool) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .with_target(debug);
    if debug {
        Box::new(builder.finish())
    } else {
        Box::new(builder.without_time().finish())
    }
}

/// Writes log lines to stderr with the reporter's bars (if shown) cleared around them.
#[derive(Clone)]
struct StderrAroundBar {
    reporter: Reporter,
}

impl<'a> MakeWriter<'a> for StderrAroundBar {
    type Writer = StderrAroundBar;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Write for StderrAroundBar {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.reporter.suspended(|| std::io::stderr().lock().write_all(buf))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_per_flag() {
        assert_eq!(default_directives(false, false, false), "off,aks_patch=warn");
        assert_eq!(default_directives(true, false, false), "off,aks_patch=info");
        assert!(default_directives(false, true, false).contains("aks_patch=debug"));
        assert!(default_directives(false, true, false).contains("kube=info"));
        assert!(default_directives(false, true, false).contains("reqwest=info"));
        assert_eq!(default_directives(true, true, true), "off,aks_patch=error");
        for d in [
            default_directives(false, false, false),
            default_directives(true, false, false),
            default_directives(false, true, false),
            default_directives(false, false, true),
        ] {
            assert!(EnvFilter::try_new(d).is_ok(), "{d}");
        }
    }

    /// Collects what the subscriber writes, as stderr would show it.
    #[derive(Clone, Default)]
    struct Stderr(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl<'a> MakeWriter<'a> for Stderr {
        type Writer = Stderr;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Write for Stderr {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What a user sees on stderr, with these flags, when the API server resets the
    /// connection twice during `listing nodes` and kube-rs, hyper and rustls log about it.
    fn stderr_for(verbose: bool, debug: bool, only_errors: bool) -> String {
        let out = Stderr::default();
        let filter = EnvFilter::new(default_directives(verbose, debug, only_errors));
        let sub = subscriber(filter, out.clone(), false, debug);
        tracing::subscriber::with_default(sub, || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            let calls = std::sync::atomic::AtomicU32::new(0);
            let policy = crate::retry::RetryPolicy {
                attempts: 5,
                initial: std::time::Duration::from_millis(1),
                max: std::time::Duration::from_millis(2),
                patience: std::time::Duration::from_secs(60),
            };
            let r = rt.block_on(crate::retry::with_retry_policy(policy, "listing nodes", || async {
                if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
                    // What kube-rs's trace layer and hyper say about a reset connection.
                    tracing::error!(target: "kube_client::client::builder", "failed with error client error (SendRequest)");
                    tracing::warn!(target: "hyper_util::client::legacy::client", "connection error: connection reset");
                    tracing::warn!(target: "rustls::conn", "Sending fatal alert DecodeError");
                    Err(::kube::Error::Service(Box::new(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "connection reset by peer",
                    ))))
                } else {
                    Ok(())
                }
            }));
            assert!(r.is_ok());
            tracing::warn!("a warning of our own");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text
    }

    #[test]
    fn dependency_lines_only_with_debug_and_one_line_per_retry() {
        let retry_lines = |t: &str| t.lines().filter(|l| l.contains("retry")).count();

        let quiet = stderr_for(false, false, false);
        assert_eq!(
            quiet, " WARN a warning of our own\n",
            "the default shows no library line and no retry"
        );

        let verbose = stderr_for(true, false, false);
        let lines: Vec<&str> = verbose.lines().collect();
        assert_eq!(lines.len(), 3, "{verbose}");
        for (i, l) in lines[..2].iter().enumerate() {
            assert!(
                l.starts_with(" INFO listing nodes failed (the connection was reset): "),
                "says what was retried and why: {l}"
            );
            assert!(l.contains(&format!("retry {} of 4 in ", i + 1)), "{l}");
        }
        assert!(
            !verbose.contains("SendRequest") && !verbose.contains("DecodeError"),
            "{verbose}"
        );

        let errors_only = stderr_for(false, false, true);
        assert_eq!(errors_only, "", "no library ERROR line with --only-show-errors either");

        let debug = stderr_for(false, true, false);
        assert!(
            debug.contains("kube_client::client::builder: failed with error client error (SendRequest)"),
            "{debug}"
        );
        assert!(debug.contains("rustls::conn: Sending fatal alert"), "{debug}");
        assert_eq!(retry_lines(&debug), 2, "still one line of ours per retry: {debug}");
    }

    #[test]
    fn init_twice_is_harmless() {
        init(false, false, false, None, true, &Reporter::silent());
        init(true, true, false, Some("aks_patch=trace"), true, &Reporter::silent());
        tracing::info!("logged through the bar-aware writer");
    }
}
