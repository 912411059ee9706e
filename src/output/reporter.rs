//! The one way to stderr for people: a progress bar, per-node step lines, warnings and
//! notes. Cheap to clone and shared by parallel tasks (`Arc` inside).
//!
//! Lines printed while the bar is shown go through the bar (`suspend`), so they never
//! tear it; tracing logs do the same (see [`super::logging`]).

use crate::cli::{GlobalArgs, OutputFormat};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How much goes to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// `--only-show-errors`: errors only; no warnings, notes, steps or progress.
    Quiet,
    /// The default: warnings, notes, steps, progress.
    Normal,
    /// `--verbose`: also [`Reporter::verbose`] lines.
    Verbose,
    /// `--debug`.
    Debug,
}

impl Verbosity {
    /// From the Azure CLI-style global flags; `--only-show-errors` wins.
    pub fn from_flags(verbose: bool, debug: bool, only_errors: bool) -> Verbosity {
        if only_errors {
            Verbosity::Quiet
        } else if debug {
            Verbosity::Debug
        } else if verbose {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        }
    }
}

/// The progress bar shown right now, if any: the log writer suspends it too.
static ACTIVE_BAR: Mutex<Option<(u64, ProgressBar)>> = Mutex::new(None);
static NEXT_BAR_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Run `f` (which writes to stderr) with the visible progress bar, if any, cleared.
pub(crate) fn with_bar_suspended<R>(f: impl FnOnce() -> R) -> R {
    let bar = lock(&ACTIVE_BAR).as_ref().map(|(_, b)| b.clone());
    match bar {
        Some(b) => b.suspend(f),
        None => f(),
    }
}

/// Reports progress and messages on stderr.
#[derive(Clone)]
pub struct Reporter {
    inner: Arc<Inner>,
}

struct Inner {
    verbosity: Verbosity,
    /// Whether a bar may be drawn at all.
    bar_allowed: bool,
    started: Instant,
    bar: Mutex<Option<(u64, ProgressBar)>>,
    /// Lines go here instead of stderr (tests).
    sink: Option<Mutex<Box<dyn Write + Send>>>,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("verbosity", &self.inner.verbosity)
            .field("bar_allowed", &self.inner.bar_allowed)
            .finish()
    }
}

impl Reporter {
    /// A reporter for stderr. `progress_enabled` is false for `-o none`; the bar is also
    /// hidden when stderr is not a terminal or with `--only-show-errors`.
    pub fn new(verbosity: Verbosity, progress_enabled: bool) -> Reporter {
        let bar_allowed = progress_enabled && verbosity != Verbosity::Quiet && std::io::stderr().is_terminal();
        Reporter {
            inner: Arc::new(Inner {
                verbosity,
                bar_allowed,
                started: Instant::now(),
                bar: Mutex::new(None),
                sink: None,
            }),
        }
    }

    /// From the global flags (`--output`, `--verbose`, `--debug`, `--only-show-errors`).
    pub fn from_args(global: &GlobalArgs) -> Reporter {
        Reporter::new(
            Verbosity::from_flags(global.verbose, global.debug, global.only_show_errors),
            global.output != OutputFormat::None,
        )
    }

    /// A reporter writing its lines to `w` and never drawing a bar (tests, logs).
    pub fn to_writer(verbosity: Verbosity, w: impl Write + Send + 'static) -> Reporter {
        Reporter {
            inner: Arc::new(Inner {
                verbosity,
                bar_allowed: false,
                started: Instant::now(),
                bar: Mutex::new(None),
                sink: Some(Mutex::new(Box::new(w))),
            }),
        }
    }

    /// A reporter that keeps its lines in memory: `(reporter, captured)`.
    pub fn capture(verbosity: Verbosity) -> (Reporter, Captured) {
        let c = Captured::default();
        (Reporter::to_writer(verbosity, c.clone()), c)
    }

    /// A reporter that prints nothing at all.
    pub fn silent() -> Reporter {
        Reporter::to_writer(Verbosity::Quiet, std::io::sink())
    }

    pub fn verbosity(&self) -> Verbosity {
        self.inner.verbosity
    }

    /// Whether a progress bar is drawn (stderr is a terminal, output not `none`, not quiet).
    pub fn progress_visible(&self) -> bool {
        self.inner.bar_allowed
    }

    /// Time since the reporter was made (the start of the command).
    pub fn elapsed(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// Start a progress bar over `len` items (replacing any bar shown).
    pub fn start_progress(&self, len: u64, msg: impl Into<String>) {
        let msg: String = msg.into();
        let id = NEXT_BAR_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let bar = if self.inner.bar_allowed {
            let b = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} ({elapsed})")
                .map(|s| s.progress_chars("=> "))
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            b.set_style(style);
            b.set_message(msg);
            b.enable_steady_tick(Duration::from_millis(120));
            *lock(&ACTIVE_BAR) = Some((id, b.clone()));
            b
        } else {
            ProgressBar::hidden().with_message(msg)
        };
        bar.set_length(len);
        if let Some((_, old)) = lock(&self.inner.bar).replace((id, bar)) {
            old.finish_and_clear();
        }
    }

    /// Advance the bar by `n` items.
    pub fn inc(&self, n: u64) {
        if let Some((_, b)) = lock(&self.inner.bar).as_ref() {
            b.inc(n);
        }
    }

    /// Change the bar's message.
    pub fn set_message(&self, msg: impl Into<String>) {
        if let Some((_, b)) = lock(&self.inner.bar).as_ref() {
            b.set_message(msg.into());
        }
    }

    /// Items done so far on the current bar (0 without one).
    pub fn position(&self) -> u64 {
        lock(&self.inner.bar).as_ref().map(|(_, b)| b.position()).unwrap_or(0)
    }

    /// Remove the bar from the screen.
    pub fn finish_and_clear(&self) {
        if let Some((id, b)) = lock(&self.inner.bar).take() {
            b.finish_and_clear();
            let mut active = lock(&ACTIVE_BAR);
            if active.as_ref().is_some_and(|(a, _)| *a == id) {
                *active = None;
            }
        }
    }

    /// A step on a node, with the time since the start: `[00:12] node: msg`.
    pub fn step(&self, node: &str, msg: &str) {
        if self.inner.verbosity >= Verbosity::Normal {
            self.line(&format!("[{}] {node}: {msg}", clock(self.elapsed())));
        }
    }

    /// `warning: msg` (not with `--only-show-errors`).
    pub fn warn(&self, msg: &str) {
        if self.inner.verbosity >= Verbosity::Normal {
            self.line(&format!("warning: {msg}"));
        }
    }

    /// A note for people (not with `--only-show-errors`).
    pub fn info(&self, msg: &str) {
        if self.inner.verbosity >= Verbosity::Normal {
            self.line(msg);
        }
    }

    /// A note only with `--verbose` or `--debug`.
    pub fn verbose(&self, msg: &str) {
        if self.inner.verbosity >= Verbosity::Verbose {
            self.line(msg);
        }
    }

    /// `error: msg`, always.
    pub fn error(&self, msg: &str) {
        self.line(&format!("error: {msg}"));
    }

    fn line(&self, text: &str) {
        if let Some(sink) = &self.inner.sink {
            let mut w = lock(sink);
            let _ = writeln!(w, "{text}");
            let _ = w.flush();
            return;
        }
        let bar = lock(&self.inner.bar).as_ref().map(|(_, b)| b.clone());
        let print = || {
            let mut e = std::io::stderr().lock();
            let _ = writeln!(e, "{text}");
        };
        match bar {
            Some(b) => b.suspend(print),
            None => with_bar_suspended(print),
        }
    }
}

/// `mm:ss`, or `h:mm:ss` past an hour.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

/// Lines a [`Reporter::capture`] reporter printed.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.0)).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_from_flags() {
        assert_eq!(Verbosity::from_flags(false, false, false), Verbosity::Normal);
        assert_eq!(Verbosity::from_flags(true, false, false), Verbosity::Verbose);
        assert_eq!(Verbosity::from_flags(true, true, false), Verbosity::Debug);
        assert_eq!(Verbosity::from_flags(true, true, true), Verbosity::Quiet);
    }

    #[test]
    fn lines_and_levels() {
        let (r, c) = Reporter::capture(Verbosity::Normal);
        r.step("aks-user-12345678-vmss000001", "draining (4 pods)");
        r.warn("node aks-user-12345678-vmss000002 is unreachable");
        r.info("2 of 5 Linux nodes need a reboot");
        r.verbose("not shown");
        r.error("shown");
        assert_eq!(
            c.text(),
            "[00:00] aks-user-12345678-vmss000001: draining (4 pods)\n\
             warning: node aks-user-12345678-vmss000002 is unreachable\n\
             2 of 5 Linux nodes need a reboot\n\
             error: shown\n"
        );
        let (r, c) = Reporter::capture(Verbosity::Quiet);
        r.step("n", "x");
        r.warn("w");
        r.info("i");
        r.error("e");
        assert_eq!(c.text(), "error: e\n");
        let (r, c) = Reporter::capture(Verbosity::Verbose);
        r.verbose("v");
        assert_eq!(c.text(), "v\n");
    }

    #[test]
    fn progress_counts_even_when_hidden() {
        let (r, _c) = Reporter::capture(Verbosity::Normal);
        assert!(!r.progress_visible());
        r.start_progress(3, "probing nodes");
        let r2 = r.clone();
        std::thread::spawn(move || r2.inc(1)).join().unwrap();
        r.inc(1);
        assert_eq!(r.position(), 2);
        r.finish_and_clear();
        assert_eq!(r.position(), 0);
    }

    #[test]
    fn no_bar_without_a_terminal_or_when_quiet() {
        // Tests run with stderr captured or piped: never a terminal here unless run by hand.
        if !std::io::stderr().is_terminal() {
            assert!(!Reporter::new(Verbosity::Normal, true).progress_visible());
        }
        assert!(!Reporter::new(Verbosity::Quiet, true).progress_visible());
        assert!(!Reporter::new(Verbosity::Normal, false).progress_visible());
    }

    #[test]
    fn clock_format() {
        assert_eq!(clock(Duration::from_secs(12)), "00:12");
        assert_eq!(clock(Duration::from_secs(754)), "12:34");
        assert_eq!(clock(Duration::from_secs(3723)), "1:02:03");
    }

    #[test]
    fn reporter_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Reporter>();
    }
}
