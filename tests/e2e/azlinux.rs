//! Azure Linux nodes end to end against aks-sim: a mixed Ubuntu + Azure Linux 3.0
//! cluster (`sim/scenarios/mixed.yaml`), scanned with `tdnf check-update` and
//! `needs-restarting -r`, patched with `tdnf -y update --refresh` one node at a time.

use crate::common::*;
use aks_sim::Fault;
use std::time::Duration;

const MIXED: &str = include_str!("../../sim/scenarios/mixed.yaml");
const UBUNTU: [&str; 2] = ["aks-system-31415926-vmss000000", "aks-system-31415926-vmss000001"];
const AZL: [&str; 2] = ["aks-azl-27182818-vmss000000", "aks-azl-27182818-vmss000001"];
const AZL_KERNEL: &str = "6.6.64.2-9.azl3";
const AZL_NEW_KERNEL: &str = "6.6.78.1-1.azl3";

fn row<'a>(rows: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row for {name} in {rows}"))
}

/// The emulator's view of a node's machine (`aks-sim status`).
fn machine(c: &Cluster, name: &str) -> serde_json::Value {
    let st = c.sim.status();
    st["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .map(|n| n["machine"].clone())
        .unwrap_or_else(|| panic!("no machine for {name} in {st}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scan_reports_azure_linux_updates_and_the_reboot_need_before_the_daily_timer() {
    skip_unless_root!();
    let c = Cluster::start(Some(MIXED)).await;
    let r = c.run(&["scan", "-o", "json"], true).await;
    r.assert_code(0);
    let rows = r.json();

    // Azure Linux 3.0: the pending updates from tdnf, with versions; no security count.
    let a0 = row(&rows, AZL[0]);
    assert_eq!(a0["patchable"], true, "{a0}");
    assert_eq!(a0["os"], "Microsoft Azure Linux 3.0");
    assert_eq!(a0["packageManager"], "tdnf");
    assert_eq!(a0["runningKernel"], AZL_KERNEL);
    assert_eq!(a0["pendingUpdates"], 4, "{a0}");
    assert_eq!(a0["securityUpdates"], serde_json::Value::Null);
    assert_eq!(a0["security"], "n/a");
    assert_eq!(a0["pendingKernel"], AZL_NEW_KERNEL);
    assert_eq!(a0["rebootRequired"], false, "nothing installed since boot: {a0}");
    let kernel = a0["updates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "kernel")
        .expect("the kernel update is listed");
    assert_eq!(kernel["to"], AZL_NEW_KERNEL);
    assert_eq!(kernel["from"], AZL_KERNEL, "the installed version, from rpm");
    assert_eq!(kernel["pockets"][0], "azurelinux-official-base");

    // Updated by dnf-automatic, no marker yet (check-restart runs at 08:00 UTC): found by
    // needs-restarting -r, with the packages behind it.
    let a1 = row(&rows, AZL[1]);
    assert_eq!(machine(&c, AZL[1])["rebootRequired"], false, "the marker is not there");
    assert_eq!(a1["rebootRequired"], true, "{a1}");
    assert_eq!(a1["rebootPackages"], serde_json::json!(["kernel", "glibc"]));
    assert_eq!(a1["pendingUpdates"], 0);

    // Ubuntu rows as before.
    let u0 = row(&rows, UBUNTU[0]);
    assert_eq!(u0["packageManager"], "apt");
    assert_eq!(u0["securityUpdates"], 2);
    assert_eq!(u0["security"], "2");
    assert_eq!(u0["pendingKernel"], "5.15.0-1073-azure");

    // The table: SECURITY says n/a on Azure Linux, the count on Ubuntu.
    let t = c.run(&["scan"], true).await;
    t.assert_code(0);
    let line = |name: &str| {
        t.stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {}", t.stdout))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // NAME POOL STATUS KERNEL PENDING SECURITY REBOOT
    assert_eq!(line(AZL[0])[3..7], [AZL_KERNEL, "4", "n/a", "false"]);
    assert_eq!(line(AZL[1])[4..7], ["0", "n/a", "true"]);
    assert_eq!(line(UBUNTU[0])[4..7], ["2", "2", "false"]);
    assert!(t.stderr.contains("1 of 4 Linux nodes needs a reboot"), "{}", t.stderr);

    // `--fail-on reboot-required` counts the Azure Linux node.
    let f = c.run(&["scan", "--fail-on", "reboot-required"], true).await;
    f.assert_code(6);

    // report -o wide: the OS of every node.
    let rep = c.run(&["report", "-o", "wide"], true).await;
    rep.assert_code(0);
    for n in AZL {
        let l = rep.stdout.lines().find(|l| l.starts_with(n)).unwrap();
        assert!(l.contains("Microsoft Azure Linux 3.0") && l.contains(AZL_KERNEL), "{l}");
    }
    for n in UBUNTU {
        let l = rep.stdout.lines().find(|l| l.starts_with(n)).unwrap();
        assert!(l.contains("Ubuntu 22.04.5 LTS"), "{l}");
    }
    // Nothing changed anywhere.
    assert!(of_kind(&c.events(), "apt-upgrade").is_empty());

    // --refresh refreshes tdnf's metadata on Azure Linux (apt-get update on Ubuntu).
    let r = c.run(&["scan", "--refresh", "-o", "json"], true).await;
    r.assert_code(0);
    assert_eq!(row(&r.json(), AZL[0])["note"], serde_json::Value::Null, "{}", r.stdout);
    // The emulator logs what the nodes' shims did on its next tick: wait for every node's.
    for n in UBUNTU.iter().chain(AZL.iter()) {
        c.wait_for_event("apt-update", Some(n), Duration::from_secs(5)).await;
    }
    let refreshed = nodes_with(&c.events(), "apt-update");
    assert_eq!(refreshed.len(), 4, "{refreshed:?}");
    assert!(of_kind(&c.events(), "apt-update")
        .iter()
        .any(|e| e.node.as_deref() == Some(AZL[0]) && e.detail == "tdnf --refresh"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apply_patches_a_mixed_ubuntu_and_azure_linux_cluster_one_node_at_a_time() {
    skip_unless_root!();
    let c = Cluster::start(Some(MIXED)).await;
    let r = c.run(&rollout_args(&["-o", "json"]), true).await;
    r.assert_code(0);
    assert_eq!(r.json()["status"], "succeeded");

    for n in UBUNTU {
        assert_eq!(c.kernel(n), "5.15.0-1073-azure", "{n}");
        let rec = r.node_record(n);
        assert_eq!(rec["state"], "done", "{rec}");
        assert_eq!(rec["rebooted"], true);
    }
    for n in AZL {
        assert_eq!(c.kernel(n), AZL_NEW_KERNEL, "{n} runs the new kernel");
        let rec = r.node_record(n);
        assert_eq!(rec["state"], "done", "{rec}");
        assert_eq!(rec["kernelBefore"], AZL_KERNEL);
        assert_eq!(rec["kernelAfter"], AZL_NEW_KERNEL);
        assert_eq!(rec["rebooted"], true);
        assert!(!c.unschedulable(n), "{n} uncordoned");
    }
    // The node with pending updates was upgraded by tdnf, and its output kept.
    let rec = r.node_record(AZL[0]);
    let pkgs: Vec<&str> = rec["packagesUpgraded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(pkgs, ["curl", "glibc", "kernel", "openssl"], "{rec}");
    assert!(rec["upgradeOutput"].as_str().unwrap().contains("Complete!"), "{rec}");
    // The node updated by dnf-automatic was only rebooted (nothing pending).
    assert_eq!(r.node_record(AZL[1])["packagesUpgraded"], serde_json::json!([]));
    assert!(r.stderr.contains("reboot required by kernel, glibc"), "{}", r.stderr);

    let ev = c.events();
    assert_eq!(max_nodes_out(&ev, &[]), 1, "never more than one node out at a time");
    let upgrades: Vec<_> = of_kind(&ev, "apt-upgrade");
    assert!(
        upgrades
            .iter()
            .any(|e| e.node.as_deref() == Some(AZL[0]) && e.detail.starts_with("tdnf update")),
        "{upgrades:?}"
    );
    assert_eq!(of_kind(&ev, "reboot").len(), 4);
    assert!(c.lock_free());

    // After the reboots, needs-restarting says no reboot is needed and nothing is pending.
    let scan = c.run(&["scan", "-o", "json"], true).await;
    scan.assert_code(0);
    let rows = scan.json();
    for n in AZL {
        let s = row(&rows, n);
        assert_eq!(s["rebootRequired"], false, "{s}");
        assert_eq!(s["pendingUpdates"], 0, "{s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tdnf_failure_halts_with_the_node_uncordoned_and_its_output_recorded() {
    skip_unless_root!();
    let c = Cluster::start(Some(MIXED)).await;
    c.sim.fault(Fault::AptFailure { node: AZL[0].into() }).unwrap();
    let r = c.run(&rollout_args(&["--nodepool", "azl", "-o", "json"]), true).await;
    r.assert_code(5);
    assert!(
        r.stderr
            .contains(&format!("upgrading node {} failed (tdnf exit 1", AZL[0]))
            && r.stderr.contains("Error(1622) : Unable to download packages"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("the node was not cordoned"), "{}", r.stderr);
    let rec = r.node_record(AZL[0]);
    assert_eq!(rec["state"], "failed", "{rec}");
    assert!(
        rec["upgradeOutput"].as_str().unwrap().contains("503"),
        "tdnf's output is in the run record: {rec}"
    );
    assert!(!c.unschedulable(AZL[0]));
    let ev = c.events();
    assert!(of_kind(&ev, "cordon").is_empty(), "nothing was cordoned");
    assert!(of_kind(&ev, "reboot").is_empty());
    assert_eq!(c.kernel(AZL[0]), AZL_KERNEL);
    assert!(c.lock_free());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn security_mode_is_refused_on_azure_linux_unless_asked_to_install_all() {
    skip_unless_root!();
    let c = Cluster::start(Some(MIXED)).await;
    let r = c.run(&rollout_args(&["--upgrade-mode", "security"]), true).await;
    r.assert_code(2);
    assert!(
        r.stderr.contains(&format!(
            "--upgrade-mode security cannot be applied to the Azure Linux nodes {}, {}",
            AZL[0], AZL[1]
        )) && r.stderr.contains("no reliable security classification")
            && r.stderr.contains("nothing was changed"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("hint:") && r.stderr.contains("--azure-linux-security-as-all"),
        "{}",
        r.stderr
    );
    let ev = c.events();
    assert!(of_kind(&ev, "apt-upgrade").is_empty(), "nothing upgraded");
    assert!(of_kind(&ev, "cordon").is_empty(), "nothing cordoned");
    assert!(c.lock_free(), "no lock taken");
    // --dry-run says so, and shows SECURITY n/a in its plan.
    let d = c
        .run(&rollout_args(&["--upgrade-mode", "security", "--dry-run"]), true)
        .await;
    d.assert_code(0);
    assert!(
        d.stderr
            .contains("apply would refuse: --upgrade-mode security cannot be applied to the Azure Linux nodes"),
        "{}",
        d.stderr
    );
    let plan_line = d
        .stderr
        .lines()
        .find(|l| l.starts_with(AZL[0]))
        .unwrap_or_else(|| panic!("{} in the plan: {}", AZL[0], d.stderr));
    assert!(plan_line.split_whitespace().any(|w| w == "n/a"), "{plan_line}");

    // Asked explicitly: all updates on the Azure Linux node.
    let r = c
        .run(
            &rollout_args(&[
                "--upgrade-mode",
                "security",
                "--azure-linux-security-as-all",
                "--nodes",
                AZL[0],
                "-o",
                "json",
            ]),
            true,
        )
        .await;
    r.assert_code(0);
    assert!(
        r.stderr
            .contains("Azure Linux classifies no update as security: installing all updates"),
        "{}",
        r.stderr
    );
    assert_eq!(r.node_record(AZL[0])["state"], "done");
    assert_eq!(c.kernel(AZL[0]), AZL_NEW_KERNEL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tdnf_waits_for_a_running_dnf_automatic_and_upgrades_once_it_is_done() {
    skip_unless_root!();
    let c = Cluster::start(Some(MIXED)).await;
    // dnf-automatic-install.service runs (holding the rpm lock) until the test ends it.
    c.hold_package_lock(AZL[0]);
    let child = c.spawn(&rollout_args(&["--nodes", AZL[0], "-o", "json"]));
    c.wait_for_upgrade_output(AZL[0], "is installing updates: waiting")
        .await;
    assert_eq!(c.count("apt-upgrade", AZL[0]), 0, "nothing upgraded while it runs");
    c.release_package_lock(AZL[0]);
    let r = finish(child).await;
    r.assert_code(0);
    let ev = c.events();
    let released = ev
        .iter()
        .rfind(|e| e.kind == "fault" && e.node.as_deref() == Some(AZL[0]))
        .expect("dnf-automatic's end");
    let upgraded = ev
        .iter()
        .find(|e| e.kind == "apt-upgrade" && e.node.as_deref() == Some(AZL[0]))
        .expect("the upgrade");
    assert!(released.seq < upgraded.seq, "upgraded while dnf-automatic ran: {ev:#?}");
    let rec = r.node_record(AZL[0]);
    assert_eq!(rec["state"], "done", "{rec}");
    assert!(
        rec["upgradeOutput"]
            .as_str()
            .unwrap()
            .contains("dnf-automatic-install.service is installing updates: waiting"),
        "{rec}"
    );
    assert!(
        of_kind(&c.events(), "apt-failed").is_empty(),
        "tdnf never hit the rpm lock"
    );
    assert_eq!(c.kernel(AZL[0]), AZL_NEW_KERNEL);
}

const MARINER: &str = r#"
resourceGroup: rg-mariner
cluster: {name: aks-mariner}
timing: {shutdownSeconds: 0.2, bootSeconds: 1, readySeconds: 0.3, podStartSeconds: 0.3, terminationSeconds: 0.1, aptSeconds: 0.1, aptUpdateSeconds: 0.1}
pools:
  - name: cbl
    mode: System
    osSKU: CBLMariner
    count: 1
    vmssId: "16180339"
    updates:
      - {name: kernel, from: 5.15.173.1-1.cm2, to: 5.15.176.3-1.cm2, pocket: mariner-official-base, kernel: 5.15.176.3-1.cm2}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn azure_linux_2_is_flagged_and_patched_only_when_allowed() {
    skip_unless_root!();
    let c = Cluster::start(Some(MARINER)).await;
    let node = "aks-cbl-16180339-vmss000000";
    let s = c.run(&["scan", "-o", "json"], true).await;
    s.assert_code(0);
    let rows = s.json();
    let r0 = row(&rows, node);
    let note = r0["note"].as_str().unwrap();
    assert!(
        note.contains("out of support since 30 Nov 2025") && note.contains("osSku AzureLinux3"),
        "{r0}"
    );
    assert_eq!(r0["pendingUpdates"], 1);

    let r = c.run(&rollout_args(&[]), true).await;
    r.assert_code(2);
    assert!(
        r.stderr.contains("out of support") && r.stderr.contains(node),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--allow-azure-linux-2"), "{}", r.stderr);
    assert!(of_kind(&c.events(), "apt-upgrade").is_empty());

    let r = c
        .run(&rollout_args(&["--allow-azure-linux-2", "-o", "json"]), true)
        .await;
    r.assert_code(0);
    assert_eq!(r.node_record(node)["state"], "done");
    assert_eq!(c.kernel(node), "5.15.176.3-1.cm2");
}
