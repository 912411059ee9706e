//! Maintenance windows end to end against aks-sim: `apply --window` outside the
//! window touches nothing and exits 8 with the next opening; a window that closes mid-run
//! stops the run between nodes with nothing left cordoned, and `--resume` in the next window
//! finishes it; `--window aks` honours the cluster's planned-maintenance configuration, of
//! every schedule type, as aks-sim's ARM serves it. Windows are computed from the current
//! time.

use crate::common::*;
use jiff::civil::Weekday;
use jiff::tz::{Offset, TimeZone};
use jiff::{RoundMode, SignedDuration, Timestamp, TimestampRound, Unit};

fn hm(t: Timestamp) -> String {
    t.strftime("%H:%M").to_string()
}

fn z(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn ymd(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d").to_string()
}

/// `t` truncated to the minute.
fn to_the_minute(t: Timestamp) -> Timestamp {
    t.round(TimestampRound::new().smallest(Unit::Minute).mode(RoundMode::Trunc))
        .unwrap()
}

fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

fn mins(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

fn hours(n: i64) -> SignedDuration {
    SignedDuration::from_hours(n)
}

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

/// The time left until `t` (zero once it has passed).
fn until(t: Timestamp) -> std::time::Duration {
    std::time::Duration::try_from(t.duration_since(Timestamp::now())).unwrap_or_default()
}

/// [`SMALL`] with these lines added under `cluster:` (and `extra` timing).
fn scenario(nodes: u32, boot_seconds: f64, maintenance: &str) -> String {
    small_with(nodes, boot_seconds).replace(
        "cluster: {name: aks-test}",
        &format!("cluster: {{name: aks-test{maintenance}}}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outside_the_window_nothing_is_touched_exit_8_and_the_next_opening_is_given() {
    skip_unless_root!();
    let c = Cluster::start(Some(&scenario(2, 1.0, ""))).await;
    // A daily window from three to four hours from now (Berlin time).
    let now = to_the_minute(Timestamp::now());
    let open = now + hours(3);
    let berlin_time = TimeZone::fixed(berlin_offset(open));
    let berlin = open.to_zoned(berlin_time.clone());
    let spec = format!(
        "{}-{}",
        berlin.strftime("%H:%M"),
        (open + hours(1)).to_zoned(berlin_time).strftime("%H:%M")
    );
    let r = c
        .run(&apply_args(&["--window", &spec, "--time-zone", "Europe/Berlin"]), true)
        .await;
    r.assert_code(8);
    assert!(r.stderr.contains("outside the maintenance window"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("the next window opens {}", berlin.strftime("%Y-%m-%d %H:%M")))
            && r.stderr.contains(&z(open))
            && r.stderr.contains("nothing was changed"),
        "the next opening in Berlin time and UTC:\n{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("hint:") && r.stderr.contains("--wait-for-window"),
        "{}",
        r.stderr
    );
    let ev = c.events();
    for kind in ["apt-upgrade", "cordon", "reboot", "lease"] {
        assert!(of_kind(&ev, kind).is_empty(), "no {kind}: {ev:?}");
    }
    assert!(c.lock_free());
    for i in 0..2 {
        assert_eq!(c.kernel(&small_node(i)), "5.15.0-1068-azure");
    }
    // The dry run says the same, and exits 0.
    let d = c
        .run(
            &apply_args(&["--dry-run", "--window", &spec, "--time-zone", "Europe/Berlin"]),
            true,
        )
        .await;
    d.assert_code(0);
    assert!(
        d.stderr.contains("outside the maintenance window") && d.stderr.contains("would exit 8"),
        "{}",
        d.stderr
    );
}

/// Europe/Berlin's offset at `t` (CET +01:00 in winter, CEST +02:00 in summer: the last
/// Sunday of March 01:00 UTC to the last Sunday of October 01:00 UTC), so the test does not
/// need a time zone crate of its own.
fn berlin_offset(t: Timestamp) -> Offset {
    let year = t.to_zoned(TimeZone::UTC).year();
    let last_sunday = |month: i8| {
        let mut d = jiff::civil::date(year, month, 31);
        while d.weekday() != Weekday::Sunday {
            d = d.yesterday().unwrap();
        }
        d.at(1, 0, 0, 0).to_zoned(TimeZone::UTC).unwrap().timestamp()
    };
    let summer = t >= last_sunday(3) && t < last_sunday(10);
    Offset::constant(if summer { 2 } else { 1 })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_window_that_closes_mid_run_stops_between_nodes_and_resume_finishes_in_the_next() {
    skip_unless_root!();
    // Two nodes whose reboot takes 20 s; the window closes 2 to 3 minutes from now, and a
    // node is given all but 15 s of it: the first node starts, the second no longer fits.
    let c = Cluster::start(Some(&scenario(2, 20.0, ""))).await;
    let now = Timestamp::now();
    let start = to_the_minute(now) - mins(1);
    let end = start + mins(4);
    let budget = end.duration_since(now).as_secs() - 15;
    let spec = format!("{}-{}", hm(start), hm(end));
    let budget = format!("{budget}s");
    let r = c
        .run(
            &apply_args(&["--window", &spec, "--node-budget", &budget, "-o", "json"]),
            true,
        )
        .await;
    r.assert_code(8);
    let (n0, n1) = (small_node(0), small_node(1));
    assert_eq!(r.json()["status"], "interrupted");
    assert_eq!(r.node_record(&n0)["state"], "done");
    assert_eq!(r.node_record(&n1)["state"], "pending");
    assert!(
        r.stderr.contains(&format!("not starting node {n1}"))
            && r.stderr.contains(&format!("closes {}", z(end)))
            && r.stderr.contains("--resume"),
        "{}",
        r.stderr
    );
    // Stopped at a safe point: nothing cordoned, the lock released, n1 untouched.
    let ev = c.events();
    assert!(!c.unschedulable(&n0) && !c.unschedulable(&n1));
    assert!(c.lock_free());
    assert_eq!(c.kernel(&n0), "5.15.0-1073-azure");
    assert_eq!(c.kernel(&n1), "5.15.0-1068-azure");
    assert!(!nodes_with(&ev, "apt-upgrade").contains(&n1), "n1 was not upgraded");

    // Another window given to --resume contradicts the record: refused, naming both.
    let before = c.events().len();
    let r2 = c
        .run(&apply_args(&["--resume", "--window", "Sun 00:00-24:00"]), true)
        .await;
    r2.assert_code(2);
    assert!(
        r2.stderr.contains("--window 'Sun 00:00-24:00' (run ")
            && r2.stderr.contains(&format!("used '{spec}')"))
            && r2.stderr.contains("nothing was changed"),
        "{}",
        r2.stderr
    );
    assert_eq!(c.events().len(), before, "nothing was done");

    // The resume keeps the recorded window; a node is now expected to be out as long as n0
    // was (the past runs' median), which still fits: the run is finished, n0 not done again.
    let r2 = c.run(&apply_args(&["--resume", "-o", "json"]), true).await;
    r2.assert_code(0);
    assert_eq!(r2.json()["status"], "succeeded");
    assert_eq!(r2.json()["options"]["window"]["windows"], serde_json::json!([spec]));
    assert_eq!(c.kernel(&n1), "5.15.0-1073-azure");
    let ev = c.events();
    assert_eq!(of_kind(&ev, "reboot").len(), 2, "each node rebooted once");
    assert_eq!(max_nodes_out(&ev, &[]), 1);
}

/// A run stopped by its window (exit 8), resumed without `--window` once the window has
/// closed: the recorded window still holds, and nothing is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resume_without_window_keeps_the_recorded_window_and_touches_nothing_outside_it() {
    skip_unless_root!();
    // The window closes one to two minutes from now; a node is given all of it but 15 s and
    // takes 20 s: n0 starts, n1 no longer fits.
    let c = Cluster::start(Some(&scenario(2, 20.0, ""))).await;
    let now = Timestamp::now();
    let start = to_the_minute(now) - mins(1);
    let end = start + mins(3);
    let spec = format!("{}-{}", hm(start), hm(end));
    let budget = format!("{}s", end.duration_since(now).as_secs() - 15);
    let r = c
        .run(&apply_args(&["--window", &spec, "--node-budget", &budget]), true)
        .await;
    r.assert_code(8);
    let (n0, n1) = (small_node(0), small_node(1));
    assert_eq!(c.kernel(&n0), "5.15.0-1073-azure");
    // Once the window has closed, a resume without --window is still held to it.
    tokio::time::sleep(until(end + secs(1))).await;
    let before = c.events().len();
    let r = c.run(&apply_args(&["--resume"]), true).await;
    r.assert_code(8);
    assert!(
        r.stderr.contains("outside the maintenance window") && r.stderr.contains("nothing was changed"),
        "{}",
        r.stderr
    );
    let ev = c.events();
    for e in &ev[before..] {
        assert!(
            !["lease", "cordon", "apt-upgrade", "reboot"].contains(&e.kind.as_str()),
            "nothing outside the window: {e:?}"
        );
    }
    assert_eq!(c.kernel(&n1), "5.15.0-1068-azure");
    assert!(!c.unschedulable(&n1));
    assert!(c.lock_free());
}

/// A run killed (SIGKILL) while its node reboots, then outside the window: a new run is refused
/// (exit 8) naming the node left out and how to put it back; `--resume` finishes that node
/// whatever the time (it is out of service already), starts no other, and exits 8.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resume_outside_the_window_finishes_the_node_left_out_and_starts_no_other() {
    skip_unless_root!();
    // Reboots take 20 s. The window is open now, for two to three minutes more, and a node is
    // given all of it but 20 s: n0 starts; once 20 s have passed no node fits any more.
    let c = Cluster::start(Some(&scenario(2, 20.0, ""))).await;
    let (n0, n1) = (small_node(0), small_node(1));
    let t0 = Timestamp::now();
    let start = to_the_minute(t0) - mins(1);
    let end = start + mins(4);
    let window = format!("{}-{}", hm(start), hm(end));
    let budget = format!("{}s", end.duration_since(t0).as_secs() - 20);
    let mut child = c
        .command_with_target(&apply_args(&["--window", &window, "--node-budget", &budget]))
        .spawn()
        .unwrap();
    c.wait_for_event("reboot", Some(&n0), std::time::Duration::from_secs(60))
        .await;
    child.kill().await.unwrap();
    let _ = child.wait().await;
    assert!(c.unschedulable(&n0), "the killed run left n0 cordoned");
    // The window is now three to four hours away.
    let now = to_the_minute(Timestamp::now());
    let spec = format!("{}-{}", hm(now + hours(3)), hm(now + hours(4)));

    let r = c.run(&apply_args(&["--window", &spec]), true).await;
    r.assert_code(8);
    assert!(
        r.stderr.contains(&format!("node {n0} is out of service"))
            && r.stderr.contains("--resume --force-unlock")
            && r.stderr.contains(&format!(
                "kubectl uncordon {n0} && kubectl annotate node {n0} aks-patch.io/in-progress-"
            )),
        "{}",
        r.stderr
    );
    assert!(c.unschedulable(&n0), "a refused run changes nothing");

    // The resume keeps the recorded window and budget, by which no node fits any more.
    let fits_until = t0 + secs(22);
    tokio::time::sleep(until(fits_until)).await;
    let r = c
        .run(&apply_args(&["--resume", "--force-unlock", "-o", "json"]), true)
        .await;
    r.assert_code(8);
    assert!(
        r.stderr
            .contains("finishing only the node(s) the interrupted run left out of service")
            && r.stderr.contains(&format!("not starting node {n1}")),
        "{}",
        r.stderr
    );
    assert_eq!(r.node_record(&n0)["state"], "done");
    assert_eq!(r.node_record(&n1)["state"], "pending");
    assert!(!c.unschedulable(&n0), "n0 put back in service");
    assert_eq!(c.kernel(&n0), "5.15.0-1073-azure");
    assert!(!nodes_with(&c.events(), "apt-upgrade").contains(&n1), "n1 untouched");
    assert!(c.lock_free());
}

/// One AKS maintenance window (ARM's JSON) as a scenario line.
fn aks_config(name: &str, window: serde_json::Value) -> String {
    format!(", maintenanceConfigurations: [{{name: {name}, maintenanceWindow: {window}}}]")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn window_aks_honours_every_schedule_type_from_arm() {
    skip_unless_root!();
    // A window that started an hour ago (to the minute) and lasts 4 hours.
    let start = to_the_minute(Timestamp::now()) - hours(1);
    let end = start + hours(4);
    let day = start.strftime("%A").to_string();
    let week_index =
        ["First", "Second", "Third", "Fourth", "Last"][((start.to_zoned(TimeZone::UTC).day() - 1) / 7) as usize];
    // Weekly, given in +02:00: the local start is two hours later on the clock.
    let local = start + hours(2);
    let cases = [
        (
            "daily every 3 days",
            serde_json::json!({"schedule": {"daily": {"intervalDays": 3}}, "durationHours": 4,
                "startDate": ymd(start - days(30)), "startTime": hm(start)}),
        ),
        (
            "weekly +02:00",
            serde_json::json!({"schedule": {"weekly": {"intervalWeeks": 1, "dayOfWeek": local.strftime("%A").to_string()}},
                "durationHours": 4, "utcOffset": "+02:00", "startTime": hm(local),
                "startDate": ymd(local - days(7))}),
        ),
        (
            "absoluteMonthly",
            serde_json::json!({"schedule": {"absoluteMonthly": {"intervalMonths": 1, "dayOfMonth": start.to_zoned(TimeZone::UTC).day()}},
                "durationHours": 4, "startTime": hm(start), "utcOffset": "+00:00"}),
        ),
        (
            "relativeMonthly",
            serde_json::json!({"schedule": {"relativeMonthly": {"intervalMonths": 1, "weekIndex": week_index, "dayOfWeek": day}},
                "durationHours": 4, "startTime": hm(start)}),
        ),
    ];
    for (what, window) in cases {
        let c = Cluster::start(Some(&scenario(
            1,
            1.0,
            &aks_config("aksManagedNodeOSUpgradeSchedule", window),
        )))
        .await;
        let r = c.run(&apply_args(&["--dry-run", "--window", "aks"]), true).await;
        r.assert_code(0);
        assert!(
            r.stderr.contains(&format!("open until {}", z(end))) && r.stderr.contains("fits"),
            "{what}: the window open now, until {}:\n{}",
            z(end),
            r.stderr
        );
    }

    // Daily, but today and tomorrow are not allowed (the `default` configuration, as the
    // fallback): outside, and the next opening is the day after tomorrow; apply exits 8
    // and touches nothing.
    let window = serde_json::json!({"schedule": {"daily": {"intervalDays": 1}}, "durationHours": 4, "startTime": hm(start),
        "notAllowedDates": [{"start": ymd(start), "end": ymd(start + days(1))}]});
    let c = Cluster::start(Some(&scenario(1, 1.0, &aks_config("default", window)))).await;
    let r = c.run(&apply_args(&["--window", "aks"]), true).await;
    r.assert_code(8);
    // (Also when the window crosses midnight: the one starting tomorrow is not allowed.)
    let next = start + days(2);
    assert!(
        r.stderr.contains("outside the maintenance window") && r.stderr.contains(&z(next)),
        "next opening {}:\n{}",
        z(next),
        r.stderr
    );
    let ev = c.events();
    assert!(of_kind(&ev, "apt-upgrade").is_empty() && of_kind(&ev, "cordon").is_empty());
    assert!(c.lock_free());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_windows_are_usage_errors_that_change_nothing() {
    skip_unless_root!();
    let c = Cluster::start(Some(&scenario(1, 1.0, ", maintenanceConfigurations: []"))).await;
    for (args, want) in [
        (vec!["--window", "Fun 01:00-02:00"], "`fun` is not a day"),
        (
            vec!["--window", "01:00-05:00", "--time-zone", "Mars/Olympus"],
            "unknown time zone `Mars/Olympus`",
        ),
        (vec!["--window", "aks"], "has no planned-maintenance configuration"),
        (vec!["--wait-for-window"], "--wait-for-window needs --window"),
    ] {
        let r = c.run(&apply_args(&args), true).await;
        r.assert_code(2);
        assert!(
            r.stderr.contains(want) && r.stderr.contains("hint:"),
            "{args:?}:\n{}",
            r.stderr
        );
    }
    let r = c
        .run(&apply_args(&["--window", "01:00-05:00", "--node-budget", "15x"]), true)
        .await;
    r.assert_code(2);
    assert!(r.stderr.contains("`15x` is not a duration"), "{}", r.stderr);
    assert!(of_kind(&c.events(), "apt-upgrade").is_empty() && c.lock_free());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scan_and_report_show_the_aks_window_and_its_next_opening() {
    skip_unless_root!();
    // The default AKS configuration of aks-sim: weekly on Sunday, 02:00 +00:00, 4 hours.
    let c = Cluster::start(Some(&scenario(1, 1.0, ""))).await;
    let now = Timestamp::now();
    let mut sunday = now.to_zoned(TimeZone::UTC).date();
    while sunday.weekday() != Weekday::Sunday {
        sunday = sunday.tomorrow().unwrap();
    }
    let opens = sunday.at(2, 0, 0, 0).to_zoned(TimeZone::UTC).unwrap().timestamp();
    let expected = if now >= opens && now < opens + hours(4) {
        format!("open now, until {}", z(opens + hours(4)))
    } else if now >= opens {
        format!("next opens {}", z(opens + days(7)))
    } else {
        format!("next opens {}", z(opens))
    };
    for cmd in ["report", "scan"] {
        let r = c.run(&[cmd], true).await;
        r.assert_code(0);
        let line = r
            .stderr
            .lines()
            .find(|l| l.contains("maintenance window"))
            .unwrap_or_else(|| panic!("{cmd}: no window line:\n{}", r.stderr));
        assert!(
            line.contains("AKS aksManagedNodeOSUpgradeSchedule: weekly on Sunday at 02:00 UTC+00:00 for 4h")
                && line.contains(&expected),
            "{cmd}: {expected}:\n{line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wait_for_window_waits_for_the_opening_then_patches() {
    skip_unless_root!();
    // Two nodes: a single one could not be drained past the web PodDisruptionBudget.
    let c = Cluster::start(Some(&scenario(2, 1.0, ""))).await;
    // A window opening at the next minute boundary at least 15 s away.
    let now = Timestamp::now();
    let mut opens = to_the_minute(now) + mins(1);
    if opens.duration_since(now) < secs(15) {
        opens += mins(1);
    }
    let spec = format!("{}-{}", hm(opens), hm(opens + hours(2)));
    let r = c
        .run(&apply_args(&["--window", &spec, "--wait-for-window"]), true)
        .await;
    r.assert_code(0);
    assert!(
        r.stderr.contains(&format!(
            "waiting for the maintenance window (--wait-for-window): opens {}",
            z(opens)
        )),
        "{}",
        r.stderr
    );
    // Nothing was touched before the window opened.
    let ev = c.events();
    let first = of_kind(&ev, "apt-upgrade")
        .first()
        .map(|e| e.time.parse::<Timestamp>().unwrap())
        .expect("the node was upgraded");
    assert!(first >= opens, "upgraded at {first}, the window opened at {opens}");
    for e in &ev {
        if matches!(e.kind.as_str(), "lease" | "cordon") {
            let t = e.time.parse::<Timestamp>().unwrap();
            assert!(t >= opens, "{} at {t}", e.kind);
        }
    }
    for i in 0..2 {
        assert_eq!(c.kernel(&small_node(i)), "5.15.0-1073-azure");
    }
}
