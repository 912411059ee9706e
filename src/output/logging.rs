//! tracing to stderr, at the level the global flags ask for.
//!
//! | flags | filter |
//! |---|---|
//! | (none) | `error,aks_patch=warn` |
//! | `--verbose` | `error,aks_patch=info` |
//! | `--debug` | `warn,aks_patch=debug,kube=info,kube_client=info,reqwest=info,azure_core=info,azure_identity=info` |
//! | `--only-show-errors` | `error` |
//!
//! `AKS_PATCH_LOG` (an `EnvFilter` directive such as `aks_patch::ssh=trace`) overrides them.
//!
//! Nothing here logs request headers or bodies: tokens and kubeconfigs never reach the
//! log. Code that logs must not put them in messages either.

use super::reporter::with_bar_suspended;
use std::io::{IsTerminal, Write};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// The environment variable that overrides the log filter.
pub const LOG_ENV: &str = "AKS_PATCH_LOG";

/// The filter directives for the global flags (without `AKS_PATCH_LOG`).
pub fn default_directives(verbose: bool, debug: bool, only_errors: bool) -> &'static str {
    if only_errors {
        "error"
    } else if debug {
        "warn,aks_patch=debug,kube=info,kube_client=info,reqwest=info,azure_core=info,azure_identity=info"
    } else if verbose {
        "error,aks_patch=info"
    } else {
        "error,aks_patch=warn"
    }
}

/// Install the global tracing subscriber (stderr). Calling it again does nothing.
pub fn init(verbose: bool, debug: bool, only_errors: bool) {
    let defaults = default_directives(verbose, debug, only_errors);
    let (filter, bad_env) = match std::env::var(LOG_ENV) {
        Ok(v) if !v.trim().is_empty() => match EnvFilter::try_new(&v) {
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
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(StderrAroundBar)
        .with_ansi(ansi)
        .with_target(debug);
    let installed = if debug {
        builder.try_init().is_ok()
    } else {
        builder.without_time().try_init().is_ok()
    };
    if installed {
        if let Some(msg) = bad_env {
            tracing::warn!("{msg}");
        }
    }
}

/// Writes log lines to stderr with the progress bar (if shown) cleared around them.
#[derive(Clone, Copy)]
struct StderrAroundBar;

impl<'a> MakeWriter<'a> for StderrAroundBar {
    type Writer = StderrAroundBar;
    fn make_writer(&'a self) -> Self::Writer {
        StderrAroundBar
    }
}

impl Write for StderrAroundBar {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        with_bar_suspended(|| std::io::stderr().lock().write_all(buf))?;
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
        assert_eq!(default_directives(false, false, false), "error,aks_patch=warn");
        assert_eq!(default_directives(true, false, false), "error,aks_patch=info");
        assert!(default_directives(false, true, false).contains("aks_patch=debug"));
        assert!(default_directives(false, true, false).contains("kube=info"));
        assert!(default_directives(false, true, false).contains("reqwest=info"));
        assert_eq!(default_directives(true, true, true), "error");
        for d in [
            default_directives(false, false, false),
            default_directives(true, false, false),
            default_directives(false, true, false),
            default_directives(false, false, true),
        ] {
            assert!(EnvFilter::try_new(d).is_ok(), "{d}");
        }
    }

    #[test]
    fn init_twice_is_harmless() {
        init(false, false, false);
        init(true, true, false);
        tracing::info!("logged through the bar-aware writer");
    }
}
