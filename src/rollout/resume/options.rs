//! A resumed run's options: the interrupted run's, kept; a flag given now (on the command
//! line or by its environment variable, as clap's `value_source` tells) that says otherwise
//! is refused, and a secret URL the run used must be given again.

use super::super::journal::enum_text;
use super::super::journal::RunOptions;
use super::super::refusal::{Obstacle, Refusal};
use std::collections::BTreeSet;

/// An option of `apply` that shapes the rollout, and so is kept in the run record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flag {
    OneAtATime,
    MaxUnavailable,
    AcrossZones,
    UpgradeMode,
    Reboot,
    DeleteEmptydirData,
    Force,
    GracePeriod,
    DrainTimeout,
    RebootTimeout,
    HealthWait,
    Soak,
    NoPendingTaint,
    Nodepool,
    Nodes,
    Selector,
    Window,
    TimeZone,
    NodeBudget,
    WaitForWindow,
    BlockingPodSelector,
    BlockingPodScope,
    PrometheusUrl,
    AlertFilterRegexp,
    AlertFilterMatchOnly,
    AlertFiringOnly,
    BlockerWait,
    Via,
    NodeShellImage,
    NodeShellNamespace,
    Parallel,
    NotifyUrl,
    NotifyTemplate,
    PushgatewayUrl,
}

impl Flag {
    pub const ALL: [Flag; 34] = [
        Flag::OneAtATime,
        Flag::MaxUnavailable,
        Flag::AcrossZones,
        Flag::UpgradeMode,
        Flag::Reboot,
        Flag::DeleteEmptydirData,
        Flag::Force,
        Flag::GracePeriod,
        Flag::DrainTimeout,
        Flag::RebootTimeout,
        Flag::HealthWait,
        Flag::Soak,
        Flag::NoPendingTaint,
        Flag::Nodepool,
        Flag::Nodes,
        Flag::Selector,
        Flag::Window,
        Flag::TimeZone,
        Flag::NodeBudget,
        Flag::WaitForWindow,
        Flag::BlockingPodSelector,
        Flag::BlockingPodScope,
        Flag::PrometheusUrl,
        Flag::AlertFilterRegexp,
        Flag::AlertFilterMatchOnly,
        Flag::AlertFiringOnly,
        Flag::BlockerWait,
        Flag::Via,
        Flag::NodeShellImage,
        Flag::NodeShellNamespace,
        Flag::Parallel,
        Flag::NotifyUrl,
        Flag::NotifyTemplate,
        Flag::PushgatewayUrl,
    ];

    /// The flag as typed on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Flag::OneAtATime => "--one-at-a-time",
            Flag::MaxUnavailable => "--max-unavailable",
            Flag::AcrossZones => "--across-zones",
            Flag::UpgradeMode => "--upgrade-mode",
            Flag::Reboot => "--reboot",
            Flag::DeleteEmptydirData => "--delete-emptydir-data",
            Flag::Force => "--force",
            Flag::GracePeriod => "--grace-period",
            Flag::DrainTimeout => "--drain-timeout",
            Flag::RebootTimeout => "--reboot-timeout",
            Flag::HealthWait => "--health-wait",
            Flag::Soak => "--soak",
            Flag::NoPendingTaint => "--no-pending-taint",
            Flag::Nodepool => "--nodepool",
            Flag::Nodes => "--nodes",
            Flag::Selector => "--selector",
            Flag::Window => "--window",
            Flag::TimeZone => "--time-zone",
            Flag::NodeBudget => "--node-budget",
            Flag::WaitForWindow => "--wait-for-window",
            Flag::BlockingPodSelector => "--blocking-pod-selector",
            Flag::BlockingPodScope => "--blocking-pod-scope",
            Flag::PrometheusUrl => "--prometheus-url",
            Flag::AlertFilterRegexp => "--alert-filter-regexp",
            Flag::AlertFilterMatchOnly => "--alert-filter-match-only",
            Flag::AlertFiringOnly => "--alert-firing-only",
            Flag::BlockerWait => "--blocker-wait",
            Flag::Via => "--via",
            Flag::NodeShellImage => "--node-shell-image",
            Flag::NodeShellNamespace => "--node-shell-namespace",
            Flag::Parallel => "--parallel",
            Flag::NotifyUrl => "--notify-url",
            Flag::NotifyTemplate => "--notify-template",
            Flag::PushgatewayUrl => "--pushgateway-url",
        }
    }
}

/// The flags given on the command line (or by their environment variable), as opposed to
/// left at their defaults: only those can contradict a resumed run's record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GivenFlags(BTreeSet<Flag>);

impl GivenFlags {
    pub fn new(flags: impl IntoIterator<Item = Flag>) -> GivenFlags {
        GivenFlags(flags.into_iter().collect())
    }

    pub fn has(&self, flag: Flag) -> bool {
        self.0.contains(&flag)
    }
}

/// Why `--resume` cannot go on with the flags given: they contradict the interrupted run's
/// record, or a secret URL it used is not given again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeRefusal {
    pub prev_id: String,
    /// `--flag value (run R used other)`, one per flag.
    pub clashes: Vec<String>,
    /// Secret URLs the run used, not given again.
    pub missing: Vec<Flag>,
}

impl std::fmt::Display for ResumeRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = vec![];
        if !self.clashes.is_empty() {
            parts.push(format!(
                "--resume continues run {} with its own options, and these contradict them: {}",
                self.prev_id,
                self.clashes.join(", ")
            ));
        }
        if !self.missing.is_empty() {
            let names: Vec<&str> = self.missing.iter().map(|f| f.name()).collect();
            parts.push(format!(
                "run {} used {}, which --resume needs again: the URL is a secret and was not recorded",
                self.prev_id,
                names.join(" and ")
            ));
        }
        f.write_str(&parts.join("; "))
    }
}

impl From<ResumeRefusal> for Refusal {
    fn from(r: ResumeRefusal) -> Refusal {
        Refusal::new(Obstacle::Options, r.to_string()).hint(r.hint())
    }
}

impl ResumeRefusal {
    pub fn hint(&self) -> String {
        let mut hints = vec![];
        if !self.missing.is_empty() {
            let names: Vec<String> = self.missing.iter().map(|f| format!("{} URL", f.name())).collect();
            hints.push(format!(
                "add {} (the same as run {}) to --resume",
                names.join(" "),
                self.prev_id
            ));
        }
        if !self.clashes.is_empty() {
            hints.push("drop the contradicting flags to resume as recorded, or start a new run (without --resume) with the options you want".to_string());
        }
        hints.join("; ")
    }
}

/// Compares the flags given now with the record, one by one.
struct Merge<'a> {
    given: &'a GivenFlags,
    prev_id: &'a str,
    clashes: Vec<String>,
    missing: Vec<Flag>,
}

impl Merge<'_> {
    /// A flag given now must say what the record says.
    fn keep<T: PartialEq>(&mut self, flag: Flag, prev: &T, now: &T, show: impl Fn(&T) -> String) {
        if self.given.has(flag) && now != prev {
            self.clashes.push(format!(
                "{} {} (run {} used {})",
                flag.name(),
                show(now),
                self.prev_id,
                show(prev)
            ));
        }
    }

    /// An on/off flag given now must have been on in the record.
    fn switch(&mut self, flag: Flag, prev: bool, now: bool) {
        if self.given.has(flag) && now && !prev {
            self.clashes
                .push(format!("{} (run {} ran without it)", flag.name(), self.prev_id));
        }
    }

    /// A secret URL: only whether it was given is recorded. Given then, it is needed now;
    /// not given then, it cannot be added.
    fn secret(&mut self, flag: Flag, prev: bool, now: bool) {
        match (prev, now) {
            (true, false) => self.missing.push(flag),
            (false, true) => self
                .clashes
                .push(format!("{} (run {} ran without it)", flag.name(), self.prev_id)),
            _ => {}
        }
    }
}

fn list(v: &[String], none: &str) -> String {
    if v.is_empty() {
        none.to_string()
    } else {
        v.join(",")
    }
}

fn quoted(v: &[String]) -> String {
    if v.is_empty() {
        "no window".to_string()
    } else {
        v.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" ")
    }
}

fn secs(s: &u64) -> String {
    crate::duration::human(std::time::Duration::from_secs(*s))
}

fn opt(v: &Option<String>) -> String {
    v.as_deref().map(|s| format!("'{s}'")).unwrap_or_else(|| "none".into())
}

/// A resumed run keeps the options of the run it continues. A flag given now (on the
/// command line or by its environment variable) that says otherwise is refused, naming both
/// values; a secret URL the run used must be given again. Records of schema 1 did not keep
/// the selection, windows, blockers, transport and notifications: those are taken as given now.
pub fn resume_options(
    prev: &RunOptions,
    prev_schema: u32,
    now: &RunOptions,
    given: &GivenFlags,
    prev_id: &str,
) -> Result<RunOptions, ResumeRefusal> {
    let mut o = prev.clone();
    let recorded_all = prev_schema >= 2;
    if !recorded_all {
        o.health_wait = now.health_wait;
        o.selection = now.selection.clone();
        o.window = now.window.clone();
        o.blockers = now.blockers.clone();
        o.transport = now.transport.clone();
        o.notify = now.notify.clone();
    }
    let mut m = Merge {
        given,
        prev_id,
        clashes: vec![],
        missing: vec![],
    };
    // The pace: one of the two flags is always given, and must be the run's.
    let pace = |m: &Option<crate::rollout::batches::MaxUnavailable>| match m {
        Some(m) => format!("--max-unavailable {m}"),
        None => "--one-at-a-time".to_string(),
    };
    if given.has(Flag::OneAtATime) && o.max_unavailable.is_some() {
        m.clashes.push(format!(
            "--one-at-a-time (run {prev_id} used {})",
            pace(&o.max_unavailable)
        ));
    }
    m.keep(
        Flag::MaxUnavailable,
        &o.max_unavailable,
        &now.max_unavailable,
        |m| match m {
            Some(m) => m.to_string(),
            None => "none: --one-at-a-time".to_string(),
        },
    );
    m.switch(Flag::AcrossZones, o.across_zones, now.across_zones);
    m.keep(Flag::UpgradeMode, &o.upgrade_mode, &now.upgrade_mode, enum_text);
    m.keep(Flag::Reboot, &o.reboot, &now.reboot, enum_text);
    m.switch(
        Flag::DeleteEmptydirData,
        o.delete_emptydir_data,
        now.delete_emptydir_data,
    );
    m.switch(Flag::Force, o.force, now.force);
    m.keep(Flag::GracePeriod, &o.grace_period, &now.grace_period, |g| match g {
        Some(s) => s.to_string(),
        None => "-1 (each pod's own)".into(),
    });
    m.keep(Flag::DrainTimeout, &o.drain_timeout, &now.drain_timeout, u64::to_string);
    m.keep(
        Flag::RebootTimeout,
        &o.reboot_timeout,
        &now.reboot_timeout,
        u64::to_string,
    );
    m.keep(Flag::Soak, &o.soak, &now.soak, u64::to_string);
    m.switch(Flag::NoPendingTaint, o.no_pending_taint, now.no_pending_taint);
    if recorded_all {
        m.keep(Flag::HealthWait, &o.health_wait, &now.health_wait, u64::to_string);
        let (p, n) = (&o.selection, &now.selection);
        m.keep(Flag::Nodepool, &p.nodepools, &n.nodepools, |v| list(v, "all pools"));
        m.keep(Flag::Nodes, &p.nodes, &n.nodes, |v| list(v, "all nodes"));
        m.keep(Flag::Selector, &p.selector, &n.selector, opt);
        let (p, n) = (&o.window, &now.window);
        m.keep(Flag::Window, &p.windows, &n.windows, |v| quoted(v));
        m.keep(Flag::TimeZone, &p.time_zone, &n.time_zone, String::clone);
        m.keep(Flag::NodeBudget, &p.node_budget, &n.node_budget, secs);
        let (p, n) = (&o.blockers, &now.blockers);
        m.keep(Flag::BlockingPodSelector, &p.pod_selectors, &n.pod_selectors, |v| {
            list(v, "none")
        });
        m.keep(Flag::BlockingPodScope, &p.pod_scope, &n.pod_scope, enum_text);
        m.secret(Flag::PrometheusUrl, p.prometheus, n.prometheus);
        m.keep(
            Flag::AlertFilterRegexp,
            &p.alert_filter_regexp,
            &n.alert_filter_regexp,
            opt,
        );
        m.switch(
            Flag::AlertFilterMatchOnly,
            p.alert_filter_match_only,
            n.alert_filter_match_only,
        );
        m.switch(Flag::AlertFiringOnly, p.alert_firing_only, n.alert_firing_only);
        m.keep(Flag::BlockerWait, &p.wait, &n.wait, secs);
        let (p, n) = (&o.transport, &now.transport);
        m.keep(Flag::Via, &p.via, &n.via, enum_text);
        m.keep(
            Flag::NodeShellImage,
            &p.node_shell_image,
            &n.node_shell_image,
            String::clone,
        );
        m.keep(
            Flag::NodeShellNamespace,
            &p.node_shell_namespace,
            &n.node_shell_namespace,
            String::clone,
        );
        m.keep(Flag::Parallel, &p.parallel, &n.parallel, u32::to_string);
        let (p, n) = (&o.notify, &now.notify);
        m.secret(Flag::NotifyUrl, p.webhooks, n.webhooks);
        m.keep(Flag::NotifyTemplate, &p.template, &n.template, opt);
        m.secret(Flag::PushgatewayUrl, p.pushgateway, n.pushgateway);
    }
    if !m.clashes.is_empty() || !m.missing.is_empty() {
        return Err(ResumeRefusal {
            prev_id: prev_id.to_string(),
            clashes: m.clashes,
            missing: m.missing,
        });
    }
    // Consents given now widen the interrupted run's (they contradict nothing), and so does
    // waiting for the window instead of stopping outside it.
    o.azure_linux_security_as_all |= now.azure_linux_security_as_all;
    o.allow_azure_linux_2 |= now.allow_azure_linux_2;
    o.allow_pending_pods |= now.allow_pending_pods;
    o.window.wait_for_window |= now.window.wait_for_window;
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::journal::{
        BlockerOptions, NotifyOptions, RebootPolicy, Selection, TransportOptions, UpgradeMode, WindowOptions,
    };

    /// What a run started with `--upgrade-mode security --delete-emptydir-data
    /// --drain-timeout 120 --window 10:00-12:00 --node-budget 5m --prometheus-url ...
    /// --notify-url ...` records.
    fn recorded() -> RunOptions {
        RunOptions {
            max_unavailable: None,
            across_zones: false,
            upgrade_mode: UpgradeMode::Security,
            reboot: RebootPolicy::IfRequired,
            delete_emptydir_data: true,
            force: false,
            grace_period: None,
            drain_timeout: 120,
            reboot_timeout: 900,
            soak: 0,
            azure_linux_security_as_all: false,
            allow_azure_linux_2: false,
            allow_pending_pods: false,
            no_pending_taint: false,
            health_wait: 600,
            selection: Selection::default(),
            window: WindowOptions {
                windows: vec!["10:00-12:00".into()],
                node_budget: 300,
                ..WindowOptions::default()
            },
            blockers: BlockerOptions {
                prometheus: true,
                alert_firing_only: true,
                wait: 5,
                ..BlockerOptions::default()
            },
            transport: TransportOptions {
                parallel: 4,
                ..TransportOptions::default()
            },
            notify: NotifyOptions {
                webhooks: true,
                ..NotifyOptions::default()
            },
        }
    }

    /// What the flags hold now, given or not: values other than the record's (whatever
    /// clap's defaults are: only the flags given count), the secret URLs given again.
    fn now_values() -> RunOptions {
        RunOptions {
            max_unavailable: None,
            across_zones: false,
            upgrade_mode: UpgradeMode::All,
            delete_emptydir_data: false,
            drain_timeout: 7,
            window: WindowOptions::default(),
            blockers: BlockerOptions {
                prometheus: true,
                ..BlockerOptions::default()
            },
            transport: TransportOptions::default(),
            ..recorded()
        }
    }

    fn given(flags: &[Flag]) -> GivenFlags {
        GivenFlags::new(flags.iter().copied())
    }

    #[test]
    fn the_pace_of_a_batch_run_survives_resume_and_one_at_a_time_is_refused_naming_it() {
        let batches = RunOptions {
            max_unavailable: Some("10%".parse().unwrap()),
            across_zones: true,
            ..recorded()
        };
        // No pace flag (allowed with --resume): the run's own.
        let o = resume_options(
            &batches,
            2,
            &now_values(),
            &given(&[Flag::PrometheusUrl, Flag::NotifyUrl]),
            "r1",
        )
        .unwrap();
        assert_eq!(o.max_unavailable, batches.max_unavailable);
        assert!(o.across_zones);
        // --one-at-a-time contradicts it.
        let e = resume_options(
            &batches,
            2,
            &now_values(),
            &given(&[Flag::OneAtATime, Flag::PrometheusUrl, Flag::NotifyUrl]),
            "r1",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("--one-at-a-time (run r1 used --max-unavailable 10%)"),
            "{e}"
        );
        // Another budget too.
        let now = RunOptions {
            max_unavailable: Some("3".parse().unwrap()),
            ..now_values()
        };
        let e = resume_options(
            &batches,
            2,
            &now,
            &given(&[Flag::MaxUnavailable, Flag::PrometheusUrl, Flag::NotifyUrl]),
            "r1",
        )
        .unwrap_err();
        assert!(e.to_string().contains("--max-unavailable 3 (run r1 used 10%)"), "{e}");
    }

    #[test]
    fn flags_left_at_their_defaults_take_the_recorded_values() {
        let o = resume_options(
            &recorded(),
            2,
            &now_values(),
            &given(&[Flag::PrometheusUrl, Flag::NotifyUrl]),
            "r1",
        )
        .unwrap();
        assert_eq!(
            o,
            recorded(),
            "the window, budget, blockers, drain flags and --parallel as recorded"
        );
    }

    #[test]
    fn a_given_flag_that_differs_from_the_record_is_refused_naming_both_values() {
        let now = RunOptions {
            window: WindowOptions {
                windows: vec!["Sun 00:00-24:00".into()],
                ..WindowOptions::default()
            },
            selection: Selection {
                nodepools: vec!["user".into()],
                ..Selection::default()
            },
            ..now_values()
        };
        let e = resume_options(
            &recorded(),
            2,
            &now,
            &given(&[
                Flag::Window,
                Flag::Nodepool,
                Flag::Parallel,
                Flag::PrometheusUrl,
                Flag::NotifyUrl,
            ]),
            "r1",
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("--window 'Sun 00:00-24:00' (run r1 used '10:00-12:00')")
                && text.contains("--nodepool user (run r1 used all pools)")
                && text.contains("--parallel 16 (run r1 used 4)"),
            "{text}"
        );
        assert!(e.missing.is_empty());
        let r = Refusal::from(e);
        assert_eq!((r.what, r.changed), (Obstacle::Options, false));
        assert!(r.hint.unwrap_or_default().contains("without --resume"));
    }

    #[test]
    fn a_given_flag_that_says_what_the_record_says_is_accepted() {
        let now = RunOptions {
            window: WindowOptions {
                windows: vec!["10:00-12:00".into()],
                ..WindowOptions::default()
            },
            upgrade_mode: UpgradeMode::Security,
            ..now_values()
        };
        let o = resume_options(
            &recorded(),
            2,
            &now,
            &given(&[Flag::Window, Flag::UpgradeMode, Flag::PrometheusUrl, Flag::NotifyUrl]),
            "r1",
        )
        .unwrap();
        assert_eq!(o, recorded());
    }

    #[test]
    fn a_secret_url_the_run_used_must_be_given_again() {
        let now = RunOptions {
            blockers: BlockerOptions::default(),
            ..now_values()
        };
        let e = resume_options(&recorded(), 2, &now, &given(&[Flag::NotifyUrl]), "r1").unwrap_err();
        assert_eq!(e.missing, vec![Flag::PrometheusUrl]);
        let text = e.to_string();
        assert!(
            text.contains("run r1 used --prometheus-url")
                && text.contains("secret and was not recorded")
                && !text.contains("contradict"),
            "{text}"
        );
        assert!(e.hint().contains("add --prometheus-url URL"), "{}", e.hint());
        // And a secret URL the run did not use cannot be added.
        let prev = RunOptions {
            notify: NotifyOptions::default(),
            ..recorded()
        };
        let e = resume_options(
            &prev,
            2,
            &now_values(),
            &given(&[Flag::PrometheusUrl, Flag::NotifyUrl]),
            "r1",
        )
        .unwrap_err();
        assert!(e.to_string().contains("--notify-url (run r1 ran without it)"), "{e}");
    }

    #[test]
    fn an_on_off_flag_given_now_that_the_run_did_not_use_is_refused() {
        let now = RunOptions {
            force: true,
            ..now_values()
        };
        let e = resume_options(
            &recorded(),
            2,
            &now,
            &given(&[Flag::Force, Flag::PrometheusUrl, Flag::NotifyUrl]),
            "r1",
        )
        .unwrap_err();
        assert!(e.to_string().contains("--force (run r1 ran without it)"), "{e}");
    }

    #[test]
    fn a_record_of_schema_1_keeps_its_drain_options_and_takes_the_rest_as_given_now() {
        let old = RunOptions {
            window: WindowOptions::default(),
            blockers: BlockerOptions::default(),
            notify: NotifyOptions::default(),
            ..recorded()
        };
        let now = RunOptions {
            window: WindowOptions {
                windows: vec!["Sun 00:00-24:00".into()],
                ..WindowOptions::default()
            },
            ..now_values()
        };
        let o = resume_options(&old, 1, &now, &given(&[Flag::Window, Flag::PrometheusUrl]), "r1").unwrap();
        assert_eq!(o.window.windows, vec!["Sun 00:00-24:00".to_string()]);
        assert!(o.blockers.prometheus);
        assert_eq!(o.upgrade_mode, UpgradeMode::Security, "as recorded");
        let now = RunOptions {
            max_unavailable: None,
            across_zones: false,
            upgrade_mode: UpgradeMode::Dist,
            ..now_values()
        };
        let e = resume_options(&old, 1, &now, &given(&[Flag::UpgradeMode]), "r1").unwrap_err();
        assert!(
            e.to_string().contains("--upgrade-mode dist (run r1 used security)"),
            "{e}"
        );
    }

    #[test]
    fn resume_takes_the_azure_linux_consents_given_now() {
        let now = RunOptions {
            azure_linux_security_as_all: true,
            allow_azure_linux_2: true,
            ..now_values()
        };
        let g = given(&[Flag::PrometheusUrl, Flag::NotifyUrl]);
        let o = resume_options(&recorded(), 2, &now, &g, "r1").unwrap();
        assert!(o.azure_linux_security_as_all && o.allow_azure_linux_2);
        assert_eq!(o.upgrade_mode, UpgradeMode::Security, "the rest as recorded");
        // And a consent recorded is kept when not repeated.
        let prev = RunOptions {
            allow_azure_linux_2: true,
            ..recorded()
        };
        assert!(
            resume_options(&prev, 2, &now_values(), &g, "r1")
                .unwrap()
                .allow_azure_linux_2
        );
    }

    #[test]
    fn resume_widens_to_pending_pods_given_now_and_keeps_them_when_recorded() {
        let g = given(&[Flag::PrometheusUrl, Flag::NotifyUrl]);
        let now = RunOptions {
            allow_pending_pods: true,
            ..now_values()
        };
        assert!(
            resume_options(&recorded(), 2, &now, &g, "r1")
                .unwrap()
                .allow_pending_pods
        );
        let prev = RunOptions {
            allow_pending_pods: true,
            ..recorded()
        };
        assert!(
            resume_options(&prev, 2, &now_values(), &g, "r1")
                .unwrap()
                .allow_pending_pods
        );
        assert!(
            !resume_options(&recorded(), 2, &now_values(), &g, "r1")
                .unwrap()
                .allow_pending_pods
        );
    }

    #[test]
    fn a_run_without_the_pending_taint_resumes_without_it_and_one_with_it_refuses_to_drop_it() {
        let without = RunOptions {
            no_pending_taint: true,
            ..recorded()
        };
        let g = given(&[Flag::PrometheusUrl, Flag::NotifyUrl]);
        assert!(
            resume_options(&without, 2, &now_values(), &g, "r1")
                .unwrap()
                .no_pending_taint,
            "kept from the record"
        );
        let dropping = RunOptions {
            no_pending_taint: true,
            ..now_values()
        };
        let g = given(&[Flag::PrometheusUrl, Flag::NotifyUrl, Flag::NoPendingTaint]);
        let refused = resume_options(&recorded(), 2, &dropping, &g, "r1").unwrap_err();
        assert_eq!(
            refused.clashes,
            vec!["--no-pending-taint (run r1 ran without it)".to_string()]
        );
    }
}
