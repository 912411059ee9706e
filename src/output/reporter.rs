//! The one way to stderr for people: a progress bar, a live status line, per-node step
//! lines, warnings and notes. Cheap to clone and shared by parallel tasks (`Arc` inside).
//!
//! On a terminal the bars (indicatif) sit under the log; lines printed meanwhile go
//! through them (`suspend`), so they never tear them; tracing logs do the same (see
//! [`super::logging`]). When stderr is not a terminal (or with `-o none` or
//! `--only-show-errors`) no bar is drawn and the status methods print plain lines instead.
//!
//! ## The live status line
//!
//! For a rollout, the status line shows the node in hand (k of N), its current step and any
//! wait with its elapsed time against its timeout, refreshed while it waits:
//!
//! ```text
//! node 2 of 5, aks-user-31417037-vmss000001: rebooting; waiting for Ready 0:35 / 15:00
//! node 3 of 5, aks-user-31417037-vmss000002: draining; waiting for evictions 0:12 / 10:00; PDB shop/storefront-pdb allows 0, retrying
//! ```
//!
//! The calls, in the order a rollout makes them:
//!
//! - [`Reporter::node_started`]`(node, k, n)` when node k of N is taken in hand;
//! - [`Reporter::step`] as before: the line above the status, and the status's current step;
//! - [`Reporter::wait_started`]`(node, what, timeout)` when a wait begins (for Ready, for
//!   evictions, for the dpkg lock, for a PDB to recover...);
//! - [`Reporter::wait_progress`]`(node, detail)` whenever the wait learns something worth
//!   showing (what it is waiting on now);
//! - [`Reporter::wait_done`]`(node)` when the wait is over, whatever its outcome (say the
//!   outcome with `step`, `warn` or `error`);
//! - [`Reporter::status_done`] after the last node ([`Reporter::finish_and_clear`] also
//!   removes it).
//!
//! Without a terminal: `node_started` prints `node k of N`, `wait_started` prints
//! `waiting for WHAT (up to M:SS)`, `wait_progress` prints its detail when it differs from
//! the last one printed for that wait, all as step lines (`[mm:ss] node: ...`); `wait_done`
//! prints nothing. Every status call is safe to make at any time, from any task.

use super::format::OutputFormat;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::collections::BTreeMap;
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the status line shows. Rendered at every redraw, so a wait's clock runs.
#[derive(Debug, Clone, Default)]
struct Status {
    node: String,
    /// `(k, n)`: node k of N, once [`Reporter::node_started`] said so.
    position: Option<(usize, usize)>,
    step: String,
    wait: Option<Wait>,
    /// The batch in progress (`--max-unavailable`): the line shows it instead of one node.
    batch: Option<BatchStatus>,
    /// The fleet's stage in progress (`fleet apply`): the line shows it.
    stage: Option<StageStatus>,
}

/// `4 draining, 3 rebooting`: how many of `phases` are at each phase of `order` (those at
/// none left out).
fn counted(order: &[&str], phases: &BTreeMap<String, &'static str>) -> String {
    order
        .iter()
        .filter_map(|p| {
            let n = phases.values().filter(|v| *v == p).count();
            (n > 0).then(|| format!("{n} {p}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `stage 2 of 3 (env=staging): 1 running, 1 succeeded, 2 waiting`, or between stages
/// `stage 1 of 3 (env=dev) done: soaking 0:35 / 10:00 before the next stage`.
#[derive(Debug, Clone, Default)]
struct StageStatus {
    index: usize,
    of: usize,
    name: String,
    /// Each cluster of the stage and where it is.
    clusters: BTreeMap<String, &'static str>,
    /// The soak after the stage: since when, and how long.
    soak: Option<(Instant, Duration)>,
}

impl StageStatus {
    /// The order a stage's clusters are told in.
    const ORDER: [&'static str; 6] = ["running", "stopping", "succeeded", "stopped", "failed", "waiting"];

    fn render(&self, now: Instant) -> String {
        let head = format!("stage {} of {} ({})", self.index, self.of, self.name);
        if let Some((since, wait)) = self.soak {
            return format!(
                "{head} done: soaking {} / {} before the next stage",
                minutes(now.saturating_duration_since(since)),
                minutes(wait)
            );
        }
        if self.clusters.is_empty() {
            return format!("{head}: no cluster");
        }
        format!("{head}: {}", counted(&Self::ORDER, &self.clusters))
    }
}

/// `batch 3 of 12 (zone 2): 4 draining, 3 rebooting, 3 back`.
#[derive(Debug, Clone, Default)]
struct BatchStatus {
    index: usize,
    of: usize,
    zone: String,
    /// Each node of the batch and where it is.
    phases: BTreeMap<String, &'static str>,
}

impl BatchStatus {
    /// The order phases are told in.
    const ORDER: [&'static str; 7] = [
        "upgrading",
        "waiting",
        "draining",
        "rebooting",
        "back",
        "done",
        "stopped",
    ];

    fn render(&self) -> String {
        format!(
            "batch {} of {}{}: {}",
            self.index,
            self.of,
            self.zone,
            counted(&Self::ORDER, &self.phases)
        )
    }
}

#[derive(Debug, Clone)]
struct Wait {
    what: String,
    started: Instant,
    timeout: Duration,
    detail: Option<String>,
}

impl Status {
    /// Whether what `node` does now goes on the line: the node in hand's own steps and waits,
    /// not those of a node worked on beside it (a download ahead while it reboots), which
    /// would show under its position and over its wait. Any node's while none is in hand.
    fn owns(&self, node: &str) -> bool {
        self.position.is_none() || self.node == node
    }

    /// `node 2 of 5, NODE: STEP; waiting for WHAT 0:35 / 15:00; DETAIL`.
    fn render(&self, now: Instant) -> String {
        if let Some(st) = &self.stage {
            return st.render(now);
        }
        if let Some(b) = &self.batch {
            return b.render();
        }
        let mut s = String::new();
        if let Some((k, n)) = self.position {
            s.push_str(&format!("node {k} of {n}, "));
        }
        s.push_str(&self.node);
        if !self.step.is_empty() {
            s.push_str(": ");
            s.push_str(&self.step);
        }
        if let Some(w) = &self.wait {
            s.push_str(if self.step.is_empty() { ": " } else { "; " });
            s.push_str(&format!(
                "waiting for {} {} / {}",
                w.what,
                minutes(now.saturating_duration_since(w.started)),
                minutes(w.timeout)
            ));
            if let Some(d) = &w.detail {
                s.push_str("; ");
                s.push_str(d);
            }
        }
        s
    }
}

/// The status line on the terminal: its bar and what it shows.
struct StatusLine {
    bar: ProgressBar,
    status: Arc<Mutex<Status>>,
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
    /// Where the bars are drawn (only when `bar_allowed`).
    bars: Option<MultiProgress>,
    bar: Mutex<Option<ProgressBar>>,
    /// The live status line, while one is shown.
    status: Mutex<Option<StatusLine>>,
    /// The batch in progress, also without a terminal.
    batch: Mutex<Option<BatchStatus>>,
    /// Without a terminal: the last wait detail printed, by node.
    printed_detail: Mutex<BTreeMap<String, String>>,
    /// Lines go here instead of stderr (tests).
    sink: Option<Arc<Mutex<Box<dyn Write + Send>>>>,
    /// Put before every line and the status line: the cluster a fleet's reporter speaks of.
    prefix: Option<String>,
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
        let bars = bar_allowed.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Reporter::build(verbosity, bars, None)
    }

    fn build(verbosity: Verbosity, bars: Option<MultiProgress>, sink: Option<Box<dyn Write + Send>>) -> Reporter {
        Reporter {
            inner: Arc::new(Inner {
                verbosity,
                bar_allowed: bars.is_some(),
                started: Instant::now(),
                bars,
                bar: Mutex::new(None),
                status: Mutex::new(None),
                batch: Mutex::new(None),
                printed_detail: Mutex::new(BTreeMap::new()),
                sink: sink.map(|w| Arc::new(Mutex::new(w))),
                prefix: None,
            }),
        }
    }

    /// For a command whose result is printed as `format`: no progress with `--output none`.
    pub fn for_output(verbosity: Verbosity, format: OutputFormat) -> Reporter {
        Reporter::new(verbosity, format != OutputFormat::None)
    }

    /// A reporter writing its lines to `w` and never drawing a bar (tests, logs).
    pub fn to_writer(verbosity: Verbosity, w: impl Write + Send + 'static) -> Reporter {
        Reporter::build(verbosity, None, Some(Box::new(w)))
    }

    /// A reporter that keeps its lines in memory: `(reporter, captured)`.
    pub fn capture(verbosity: Verbosity) -> (Reporter, Captured) {
        let c = Captured::default();
        (Reporter::to_writer(verbosity, c.clone()), c)
    }

    /// A reporter for one cluster of a fleet: its lines and its status line start with
    /// `prefix: `, drawn with this reporter's bars (one status line a cluster) and written
    /// where this one writes. Its elapsed clock starts now.
    pub fn for_cluster(&self, prefix: &str) -> Reporter {
        let prefix = match &self.inner.prefix {
            Some(p) => format!("{p}: {prefix}"),
            None => prefix.to_string(),
        };
        Reporter {
            inner: Arc::new(Inner {
                verbosity: self.inner.verbosity,
                bar_allowed: self.inner.bar_allowed,
                started: Instant::now(),
                bars: self.inner.bars.clone(),
                bar: Mutex::new(None),
                status: Mutex::new(None),
                batch: Mutex::new(None),
                printed_detail: Mutex::new(BTreeMap::new()),
                sink: self.inner.sink.clone(),
                prefix: Some(prefix),
            }),
        }
    }

    /// A reporter that keeps its lines in memory and keeps a status line as on a terminal,
    /// drawn nowhere (tests of what the status line says).
    #[cfg(test)]
    pub fn capture_with_status(verbosity: Verbosity) -> (Reporter, Captured) {
        let c = Captured::default();
        let bars = MultiProgress::with_draw_target(ProgressDrawTarget::hidden());
        (Reporter::build(verbosity, Some(bars), Some(Box::new(c.clone()))), c)
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
        let bar = match &self.inner.bars {
            Some(bars) => {
                let b = ProgressBar::new(len);
                // Above the status line, if one is shown.
                let b = match lock(&self.inner.status).as_ref() {
                    Some(s) => bars.insert_before(&s.bar, b),
                    None => bars.add(b),
                };
                let style = ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} ({elapsed})")
                    .map(|s| s.progress_chars("=> "))
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
                b.set_style(style);
                b.set_message(msg);
                b.enable_steady_tick(Duration::from_millis(120));
                b
            }
            None => ProgressBar::hidden().with_message(msg),
        };
        bar.set_length(len);
        if let Some(old) = lock(&self.inner.bar).replace(bar) {
            self.remove_bar(&old);
        }
    }

    fn remove_bar(&self, bar: &ProgressBar) {
        bar.finish_and_clear();
        if let Some(bars) = &self.inner.bars {
            bars.remove(bar);
        }
    }

    /// Advance the bar by `n` items.
    pub fn inc(&self, n: u64) {
        if let Some(b) = lock(&self.inner.bar).as_ref() {
            b.inc(n);
        }
    }

    /// Change the bar's message.
    pub fn set_message(&self, msg: impl Into<String>) {
        if let Some(b) = lock(&self.inner.bar).as_ref() {
            b.set_message(msg.into());
        }
    }

    /// Items done so far on the current bar (0 without one).
    pub fn position(&self) -> u64 {
        lock(&self.inner.bar).as_ref().map(ProgressBar::position).unwrap_or(0)
    }

    /// Remove the bar (and the status line, if shown) from the screen.
    pub fn finish_and_clear(&self) {
        if let Some(b) = lock(&self.inner.bar).take() {
            self.remove_bar(&b);
        }
        self.status_done();
    }

    /// A step on a node, with the time since the start: `[00:12] node: msg`. While the
    /// status line is shown, `msg` is also its current step.
    pub fn step(&self, node: &str, msg: &str) {
        self.update_status(|s| {
            if s.owns(node) {
                s.node = node.to_string();
                s.step = msg.to_string();
            }
        });
        if self.inner.verbosity >= Verbosity::Normal {
            self.line(&format!("[{}] {node}: {msg}", clock(self.elapsed())));
        }
    }

    /// Node `index` of `total` (1-based) is now in hand: the status line shows it, with no
    /// step and no wait yet. Without a terminal: the step line `node k of N`.
    pub fn node_started(&self, node: &str, index: usize, total: usize) {
        lock(&self.inner.printed_detail).remove(node);
        if self.ensure_status() {
            // A node of a batch (or of a cluster in a fleet's stage): the line stays the
            // batch's (the stage's).
            self.update_status(|s| {
                *s = Status {
                    node: node.to_string(),
                    position: Some((index, total)),
                    batch: s.batch.take(),
                    stage: s.stage.take(),
                    ..Status::default()
                }
            });
        } else {
            self.step(node, &format!("node {index} of {total}"));
        }
    }

    /// A wait begins on `node`: for `what` (`Ready`, `evictions`, `the dpkg lock`...), for at
    /// most `timeout`. The status line shows `waiting for WHAT 0:35 / 15:00`, its clock
    /// running. Without a terminal: the step line `waiting for WHAT (up to 15:00)`.
    pub fn wait_started(&self, node: &str, what: &str, timeout: Duration) {
        lock(&self.inner.printed_detail).remove(node);
        if self.ensure_status() {
            self.update_status(|s| {
                if !s.owns(node) {
                    return;
                }
                s.node = node.to_string();
                s.wait = Some(Wait {
                    what: what.to_string(),
                    started: Instant::now(),
                    timeout,
                    detail: None,
                });
            });
        } else {
            self.step(node, &format!("waiting for {what} (up to {})", minutes(timeout)));
        }
    }

    /// What the wait on `node` is held up by now (`PDB shop/storefront-pdb allows 0,
    /// retrying`): shown after the wait's clock. Without a terminal: a step line, only when
    /// it differs from the last one printed for this wait.
    pub fn wait_progress(&self, node: &str, detail: &str) {
        if self.status_shown() {
            self.update_status(|s| {
                if !s.owns(node) {
                    return;
                }
                if let Some(w) = s.wait.as_mut() {
                    w.detail = Some(detail.to_string());
                }
            });
            return;
        }
        let mut printed = lock(&self.inner.printed_detail);
        if printed.get(node).map(String::as_str) != Some(detail) {
            printed.insert(node.to_string(), detail.to_string());
            drop(printed);
            self.step(node, detail);
        }
    }

    /// The wait on `node` is over, whatever its outcome (report that with [`Self::step`],
    /// [`Self::warn`] or [`Self::error`]): the status line drops it. Prints nothing.
    pub fn wait_done(&self, node: &str) {
        lock(&self.inner.printed_detail).remove(node);
        self.update_status(|s| {
            if s.owns(node) {
                s.wait = None;
            }
        });
    }

    /// Batch `index` of `of` starts with `nodes` (`zone`: ` (zone Z)` or empty): the status
    /// line counts its nodes by phase until [`Self::batch_done`].
    pub fn batch_started(&self, index: usize, of: usize, zone: String, nodes: Vec<String>) {
        let batch = BatchStatus {
            index,
            of,
            zone,
            phases: nodes.into_iter().map(|n| (n, "upgrading")).collect(),
        };
        *lock(&self.inner.batch) = Some(batch.clone());
        if self.ensure_status() {
            self.update_status(|s| s.batch = Some(batch));
        }
    }

    /// Nodes that joined the batch in progress (rolling slots).
    pub fn batch_joined(&self, nodes: Vec<String>) {
        let mut slot = lock(&self.inner.batch);
        let Some(b) = slot.as_mut() else { return };
        for n in nodes {
            b.phases.insert(n, "upgrading");
        }
        let b = b.clone();
        drop(slot);
        if self.status_shown() {
            self.update_status(|s| s.batch = Some(b));
        }
    }

    /// Where `node` of the batch in progress is now (`draining`, `rebooting`, `back`,
    /// `done`...). With `--verbose` and no terminal, the batch's line when it changes.
    pub fn batch_phase(&self, node: &str, phase: &'static str) {
        let mut slot = lock(&self.inner.batch);
        let Some(b) = slot.as_mut() else { return };
        let Some(p) = b.phases.get_mut(node) else { return };
        if *p == phase {
            return;
        }
        *p = phase;
        let b = b.clone();
        drop(slot);
        if self.status_shown() {
            self.update_status(|s| s.batch = Some(b));
        } else {
            self.verbose(&b.render());
        }
    }

    /// The batch in progress ended: its line, once.
    pub fn batch_done(&self, index: usize) {
        let Some(b) = lock(&self.inner.batch).take() else {
            return;
        };
        if b.index == index {
            self.info(&b.render());
        }
        self.update_status(|s| s.batch = None);
    }

    /// Stage `index` of `of` of a fleet run starts with `clusters` (all waiting): the status
    /// line counts them by where they are until the next stage (or the end). Prints nothing
    /// (the scheduler's lines say it).
    pub fn stage_line_started(&self, index: usize, of: usize, name: &str, clusters: &[String]) {
        let stage = StageStatus {
            index,
            of,
            name: name.to_string(),
            clusters: clusters.iter().map(|c| (c.clone(), "waiting")).collect(),
            soak: None,
        };
        if self.ensure_status() {
            self.update_status(|s| s.stage = Some(stage));
        }
    }

    /// Where `cluster` of the stage in progress is now (`running`, `stopping`,
    /// `succeeded`, `stopped`, `failed`).
    pub fn stage_line_cluster(&self, cluster: &str, phase: &'static str) {
        self.update_status(|s| {
            if let Some(p) = s.stage.as_mut().and_then(|st| st.clusters.get_mut(cluster)) {
                *p = phase;
            }
        });
    }

    /// The stage in progress is over and the next waits `wait`: the line shows the soak's
    /// clock.
    pub fn stage_line_soaking(&self, wait: Duration) {
        self.update_status(|s| {
            if let Some(st) = s.stage.as_mut() {
                st.soak = Some((Instant::now(), wait));
            }
        });
    }

    /// A cluster of the stage failed: the clusters still running stop at their safe point.
    pub fn stage_line_stopping(&self) {
        self.update_status(|s| {
            if let Some(st) = s.stage.as_mut() {
                for p in st.clusters.values_mut().filter(|p| **p == "running") {
                    *p = "stopping";
                }
            }
        });
    }

    /// Remove the status line (after the last node). Prints nothing.
    pub fn status_done(&self) {
        if let Some(s) = lock(&self.inner.status).take() {
            self.remove_bar(&s.bar);
        }
    }

    /// The status line's text as it would be drawn now (`None` when none is shown).
    pub fn status_text(&self) -> Option<String> {
        lock(&self.inner.status)
            .as_ref()
            .map(|s| lock(&s.status).render(Instant::now()))
    }

    fn status_shown(&self) -> bool {
        lock(&self.inner.status).is_some()
    }

    /// Show the status line if bars may be drawn; whether it is shown.
    fn ensure_status(&self) -> bool {
        let Some(bars) = &self.inner.bars else { return false };
        let mut slot = lock(&self.inner.status);
        if slot.is_none() {
            let status = Arc::new(Mutex::new(Status::default()));
            let shown = status.clone();
            let prefix = self.inner.prefix.clone().map(|p| format!("{p}: ")).unwrap_or_default();
            let style = ProgressStyle::with_template("{spinner} {status}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner())
                .with_key("status", move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = w.write_str(&prefix);
                    let _ = w.write_str(&lock(&shown).render(Instant::now()));
                });
            let bar = bars.add(ProgressBar::new_spinner());
            bar.set_style(style);
            // The wait's clock: redrawn four times a second.
            bar.enable_steady_tick(Duration::from_millis(250));
            *slot = Some(StatusLine { bar, status });
        }
        true
    }

    fn update_status(&self, f: impl FnOnce(&mut Status)) {
        if let Some(s) = lock(&self.inner.status).as_ref() {
            f(&mut lock(&s.status));
            s.bar.tick();
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
        let prefixed;
        let text = match &self.inner.prefix {
            Some(p) => {
                prefixed = format!("{p}: {text}");
                prefixed.as_str()
            }
            None => text,
        };
        if let Some(sink) = &self.inner.sink {
            let mut w = lock(sink);
            let _ = writeln!(w, "{text}");
            let _ = w.flush();
            return;
        }
        let print = || {
            let mut e = std::io::stderr().lock();
            let _ = writeln!(e, "{text}");
        };
        match &self.inner.bars {
            Some(bars) => bars.suspend(print),
            None => print(),
        }
    }

    /// Runs `f` (which writes to stderr) with this reporter's bars, if drawn, cleared around
    /// it: log lines go through here.
    pub fn suspended<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.inner.bars {
            Some(bars) => bars.suspend(f),
            None => f(),
        }
    }
}

/// `m:ss`, or `h:mm:ss` past an hour: a wait's clock and its timeout.
fn minutes(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
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
    fn a_clusters_reporter_names_its_cluster_on_every_line_and_writes_where_the_fleets_does() {
        let (fleet, c) = Reporter::capture(Verbosity::Normal);
        let one = fleet.for_cluster("rg-a/aks-1");
        fleet.info("stage 1 of 2 (env=dev): 2 cluster(s)");
        one.step("node-0", "cordoned");
        one.warn("slow");
        assert_eq!(
            c.text(),
            "stage 1 of 2 (env=dev): 2 cluster(s)\n\
             rg-a/aks-1: [00:00] node-0: cordoned\n\
             rg-a/aks-1: warning: slow\n"
        );
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
    fn status_line_text() {
        let now = Instant::now();
        let mut s = Status {
            node: "aks-user-31417037-vmss000001".into(),
            position: Some((2, 5)),
            step: "rebooting".into(),
            wait: None,
            batch: None,
            stage: None,
        };
        assert_eq!(s.render(now), "node 2 of 5, aks-user-31417037-vmss000001: rebooting");
        s.wait = Some(Wait {
            what: "Ready".into(),
            started: now - Duration::from_secs(35),
            timeout: Duration::from_secs(900),
            detail: None,
        });
        assert_eq!(
            s.render(now),
            "node 2 of 5, aks-user-31417037-vmss000001: rebooting; waiting for Ready 0:35 / 15:00"
        );
        s.wait.as_mut().unwrap().detail = Some("PDB shop/storefront-pdb allows 0, retrying".into());
        assert_eq!(
            s.render(now + Duration::from_secs(3600)),
            "node 2 of 5, aks-user-31417037-vmss000001: rebooting; waiting for Ready 1:00:35 / 15:00; \
             PDB shop/storefront-pdb allows 0, retrying"
        );
        let bare = Status {
            node: "n".into(),
            wait: s.wait.clone(),
            ..Status::default()
        };
        assert!(
            bare.render(now).starts_with("n: waiting for Ready 0:35 / 15:00"),
            "{}",
            bare.render(now)
        );
    }

    #[test]
    fn status_without_a_terminal_is_plain_lines() {
        let (r, c) = Reporter::capture(Verbosity::Normal);
        r.node_started("n1", 2, 5);
        r.step("n1", "cordoned");
        r.wait_started("n1", "evictions", Duration::from_secs(600));
        r.wait_progress("n1", "PDB shop/storefront-pdb allows 0, retrying");
        r.wait_progress("n1", "PDB shop/storefront-pdb allows 0, retrying");
        r.wait_progress("n1", "PDB shop/storefront-pdb allows 1");
        r.wait_done("n1");
        r.status_done();
        assert_eq!(r.status_text(), None);
        assert_eq!(
            c.text(),
            "[00:00] n1: node 2 of 5\n\
             [00:00] n1: cordoned\n\
             [00:00] n1: waiting for evictions (up to 10:00)\n\
             [00:00] n1: PDB shop/storefront-pdb allows 0, retrying\n\
             [00:00] n1: PDB shop/storefront-pdb allows 1\n",
            "the repeated detail is printed once"
        );
        let (r, c) = Reporter::capture(Verbosity::Quiet);
        r.node_started("n1", 1, 1);
        r.wait_started("n1", "Ready", Duration::from_secs(1));
        r.wait_progress("n1", "x");
        assert_eq!(c.text(), "");
    }

    /// A terminal that records what is drawn on it.
    #[derive(Debug, Clone, Default)]
    struct Screen(Arc<Mutex<String>>);

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            200
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            lock(&self.0).push_str(&format!("{s}\n"));
            Ok(())
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            lock(&self.0).push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn status_line_on_a_terminal() {
        let screen = Screen::default();
        let bars =
            MultiProgress::with_draw_target(ProgressDrawTarget::term_like_with_hz(Box::new(screen.clone()), 100));
        let log = Captured::default();
        let r = Reporter::build(Verbosity::Normal, Some(bars), Some(Box::new(log.clone())));
        assert!(r.progress_visible());
        r.node_started("n1", 2, 5);
        r.step("n1", "rebooting");
        r.wait_started("n1", "Ready", Duration::from_secs(900));
        r.wait_progress("n1", "NotReady since 0:03");
        // The wait's clock, in seconds, each time the line was drawn (or is rendered now).
        let clocks = |text: &str| -> Vec<u64> {
            text.split("waiting for Ready ")
                .skip(1)
                .filter_map(|rest| {
                    let (m, s) = rest.split_once(" / ")?.0.split_once(':')?;
                    Some(m.parse::<u64>().ok()? * 60 + s.parse::<u64>().ok()?)
                })
                .collect()
        };
        let now = r.status_text().unwrap();
        assert!(
            now.starts_with("node 2 of 5, n1: rebooting; waiting for Ready "),
            "{now}"
        );
        assert!(now.ends_with(" / 15:00; NotReady since 0:03"), "{now}");
        // The clock runs without any call, on the screen too.
        std::thread::sleep(Duration::from_millis(1300));
        assert!(clocks(&r.status_text().unwrap())[0] >= 1);
        let drawn = lock(&screen.0).clone();
        assert!(
            drawn.contains("node 2 of 5, n1: rebooting; waiting for Ready "),
            "{drawn}"
        );
        assert!(clocks(&drawn).iter().max().is_some_and(|s| *s >= 1), "{drawn}");
        // Only `step` wrote a line to the log; the rest lives on the status line.
        assert_eq!(log.text(), "[00:00] n1: rebooting\n");
        r.wait_done("n1");
        assert_eq!(r.status_text().as_deref(), Some("node 2 of 5, n1: rebooting"));
        r.finish_and_clear();
        assert_eq!(r.status_text(), None);
    }

    #[test]
    fn the_next_nodes_download_ahead_leaves_the_line_on_the_node_in_hand() {
        let (r, log) = Reporter::capture_with_status(Verbosity::Normal);
        r.node_started("n1", 2, 5);
        r.step("n1", "rebooting");
        r.wait_started("n1", "Ready", Duration::from_secs(900));
        // While n1 reboots, n2's packages are downloaded: a step line in the log, but the
        // status line stays n1's, its wait included.
        r.step("n2", "packages downloaded ahead, while the previous node reboots");
        r.wait_started("n2", "apt", Duration::from_secs(60));
        r.wait_progress("n2", "dpkg lock held");
        r.wait_done("n2");
        let now = r.status_text().unwrap();
        assert!(
            now.starts_with("node 2 of 5, n1: rebooting; waiting for Ready "),
            "{now}"
        );
        assert!(!now.contains("dpkg"), "{now}");
        assert!(log.text().contains("n2: packages downloaded ahead"), "{}", log.text());
        // n2's turn: the line is n2's.
        r.wait_done("n1");
        r.node_started("n2", 3, 5);
        r.step("n2", "upgrading");
        assert_eq!(r.status_text().as_deref(), Some("node 3 of 5, n2: upgrading"));
    }

    #[test]
    fn the_batch_line_stays_as_the_nodes_of_the_batch_start() {
        let (r, _) = Reporter::capture_with_status(Verbosity::Normal);
        r.batch_started(1, 3, " (zone 1)".into(), vec!["n0".into(), "n1".into()]);
        r.node_started("n0", 1, 6);
        r.node_started("n1", 2, 6);
        assert_eq!(r.status_text().as_deref(), Some("batch 1 of 3 (zone 1): 2 upgrading"));
        r.batch_phase("n0", "draining");
        assert_eq!(
            r.status_text().as_deref(),
            Some("batch 1 of 3 (zone 1): 1 upgrading, 1 draining")
        );
    }

    #[test]
    fn reporter_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Reporter>();
    }
}
