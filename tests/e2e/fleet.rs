//! `aks-patch fleet scan|apply|report` end to end against a fleet of aks-sim clusters: one
//! ARM endpoint over two subscriptions with Resource Graph and Fleet Manager, each cluster its
//! own API server, nodes and event log. Each test asserts what an operator would check: the
//! exit code, the rows, the fleet run record, and each cluster's own event log.

use crate::common::*;
use serde_json::Value;

const SUB_A: &str = "00000000-1111-2222-3333-444444444444";
const SUB_B: &str = "55555555-6666-7777-8888-999999999999";

/// Three clusters of one node each (a node whose packages and kernel are pending): dev and
/// staging in subscription A, prod in B, all tagged team=shop and by environment; Resource
/// Graph pages of two rows (three clusters take two pages) under a quota of one query a
/// second (the second page waits for the quota to come back); a Fleet Manager fleet of all
/// three with a strategy of two stages.
fn scenario(boot_seconds: f64) -> String {
    scenario_of(boot_seconds, 1)
}

/// [`scenario`] with `nodes` nodes a cluster.
fn scenario_of(boot_seconds: f64, nodes: u32) -> String {
    format!(
        r#"
clusterDefaults:
  subscriptionId: {SUB_A}
  cluster: {{name: x, tags: {{team: shop}}}}
  timing: {{bootSeconds: {boot_seconds}, shutdownSeconds: 0.1, readySeconds: 0.2, podStartSeconds: 0.1, aptSeconds: 0.1, aptUpdateSeconds: 0.1}}
  pools:
    - name: nodes
      mode: System
      osType: Linux
      count: {nodes}
      kernel: 5.15.0-1068-azure
      updates:
        - {{name: linux-azure, from: 5.15.0.1068.66, to: 5.15.0.1073.71, pocket: jammy-security, kernel: 5.15.0-1073-azure}}
        - {{name: openssl, from: 3.0.2-0ubuntu1.18, to: 3.0.2-0ubuntu1.19, pocket: jammy-security}}
  bastion: false
clusters:
  - resourceGroup: rg-dev
    cluster: {{name: aks-dev-1, tags: {{env: dev}}}}
  - resourceGroup: rg-staging
    cluster: {{name: aks-staging-1, tags: {{env: staging}}}}
  - subscriptionId: {SUB_B}
    resourceGroup: rg-prod
    cluster: {{name: aks-prod-1, tags: {{env: prod}}}}
resourceGraphPageSize: 2
resourceGraphQuota: {{queries: 1, windowSeconds: 1}}
fleets:
  - resourceGroup: rg-fleet
    name: shop-fleet
    members:
      - {{name: dev-1, cluster: aks-dev-1, group: dev}}
      - {{name: staging-1, cluster: aks-staging-1, group: staging}}
      - {{name: prod-1, cluster: aks-prod-1, group: prod}}
    updateStrategies:
      - name: dev-then-rest
        stages:
          - {{name: early, groups: [dev]}}
          - {{name: late, groups: [staging, prod]}}
"#
    )
}

const CLUSTERS: [&str; 3] = ["aks-dev-1", "aks-prod-1", "aks-staging-1"];

fn clusters_of(rows: &Value) -> Vec<String> {
    let mut v: Vec<String> = rows
        .as_array()
        .unwrap_or_else(|| panic!("rows: {rows}"))
        .iter()
        .map(|r| r["cluster"].as_str().unwrap_or("").to_string())
        .collect();
    v.sort();
    v
}

fn row<'a>(rows: &'a Value, cluster: &str) -> &'a Value {
    rows.as_array()
        .and_then(|rs| rs.iter().find(|r| r["cluster"] == cluster))
        .unwrap_or_else(|| panic!("no row of {cluster} in {rows}"))
}

/// What aks-patch did to a cluster, from its own event log.
fn touched(fleet: &Fleet, cluster: &str) -> usize {
    let ev = fleet.cluster(cluster).events();
    ["cordon", "reboot", "apt-upgrade"]
        .iter()
        .map(|k| of_kind(&ev, k).len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_are_chosen_by_tag_subscription_and_fleet_membership_across_resource_graph_pages() {
    skip_unless_root!();
    let fleet = Fleet::start(&scenario(1.0)).await;

    // Every subscription the credential can list (two), three clusters over two pages.
    let all = fleet.run(&["fleet", "scan", "--tag", "team=shop", "-o", "json"]).await;
    all.assert_code(0);
    let rows = all.json();
    assert_eq!(clusters_of(&rows), CLUSTERS);
    assert_eq!(row(&rows, "aks-prod-1")["subscription"], SUB_B);
    assert_eq!(row(&rows, "aks-dev-1")["subscription"], SUB_A);
    for c in CLUSTERS {
        let r = row(&rows, c);
        assert_eq!(r["linuxNodes"], 1, "{r}");
        assert_eq!(r["error"], Value::Null, "{r}");
        assert_eq!(
            r["nodes"].as_array().map(Vec::len),
            Some(1),
            "per-node detail with -o json: {r}"
        );
    }

    // A tag narrows; a subscription narrows.
    let dev = fleet.run(&["fleet", "scan", "--tag", "env=dev", "-o", "json"]).await;
    dev.assert_code(0);
    assert_eq!(clusters_of(&dev.json()), ["aks-dev-1"]);
    let b = fleet
        .run(&["fleet", "scan", "--subscription", SUB_B, "-o", "json"])
        .await;
    b.assert_code(0);
    assert_eq!(clusters_of(&b.json()), ["aks-prod-1"]);
    // A tag value that tries to close its string literal selects nothing (exit 2), and is
    // not KQL.
    let odd = fleet
        .run(&["fleet", "scan", "--tag", "env=dev' or name != '", "-o", "json"])
        .await;
    odd.assert_code(2);
    assert!(odd.stderr.contains("no cluster matches"), "{}", odd.stderr);

    // A --where the service refuses says why, as the service's details do.
    let bad = fleet
        .run(&[
            "fleet",
            "scan",
            "--where",
            "name has 'dev' | summarize count()",
            "-o",
            "json",
        ])
        .await;
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("Resource Graph query failed"), "{}", bad.stderr);
    assert!(bad.stderr.contains("line 1"), "the reason, where: {}", bad.stderr);
    let good = fleet
        .run(&["fleet", "scan", "--where", "name startswith 'aks-p'", "-o", "json"])
        .await;
    good.assert_code(0);
    assert_eq!(clusters_of(&good.json()), ["aks-prod-1"]);

    // The members of a Fleet Manager fleet.
    let members = fleet
        .run(&["fleet", "scan", "--fleet", "rg-fleet/shop-fleet", "-o", "json"])
        .await;
    members.assert_code(0);
    assert_eq!(clusters_of(&members.json()), CLUSTERS);

    // The table: one row a cluster; report reads the scans just made, without SSH.
    let table = fleet.run(&["fleet", "scan", "-g", "rg-dev", "-g", "rg-prod"]).await;
    table.assert_code(0);
    let header = table.stdout.lines().next().unwrap_or("");
    for col in [
        "CLUSTER",
        "SUBSCRIPTION",
        "LINUX",
        "REBOOT",
        "PENDING",
        "SECURITY",
        "WINDOWS",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert_eq!(table.stdout.lines().count(), 3, "{}", table.stdout);
    let report = fleet.run(&["fleet", "report", "-o", "json"]).await;
    report.assert_code(0);
    let r = report.json();
    assert_eq!(clusters_of(&r), CLUSTERS);
    assert_eq!(row(&r, "aks-dev-1")["nodesScanned"], 1, "{r}");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_scan_with_one_cluster_unreachable_shows_it_as_a_row_with_its_error() {
    skip_unless_root!();
    let fleet = Fleet::start(&scenario(1.0)).await;
    fleet
        .cluster("aks-staging-1")
        .sim
        .fault(aks_sim::Fault::ApiServerDown)
        .expect("the fault applies");
    let run = fleet.run(&["fleet", "scan", "-o", "json"]).await;
    run.assert_code(5);
    let rows = run.json();
    assert_eq!(clusters_of(&rows), CLUSTERS, "every cluster is a row");
    let down = row(&rows, "aks-staging-1");
    assert!(down["error"].as_str().is_some_and(|e| !e.is_empty()), "{down}");
    assert_eq!(down["linuxNodes"], Value::Null);
    for c in ["aks-dev-1", "aks-prod-1"] {
        assert_eq!(row(&rows, c)["error"], Value::Null);
        assert_eq!(row(&rows, c)["linuxNodes"], 1);
    }
    assert!(run.stderr.contains("could not be scanned"), "{}", run.stderr);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_cluster_in_stage_one_leaves_the_later_stages_untouched() {
    skip_unless_root!();
    let fleet = Fleet::start(&scenario(1.0)).await;
    fleet
        .cluster("aks-dev-1")
        .sim
        .fault(aks_sim::Fault::AptFailure { node: small_node(0) })
        .expect("the fault applies");
    let mut args = vec![
        "fleet",
        "apply",
        "--stage",
        "env=dev",
        "--stage",
        "env=staging,team=shop",
        "--stage",
        "env=prod",
    ];
    args.extend(apply_args(&["-o", "json"]).into_iter().skip(1));
    let run = fleet.run(&args).await;
    assert_ne!(run.code, 0, "{}", run.stderr);
    let rec = run.json();
    assert_eq!(rec["result"], "failed", "{rec}");
    let stages = rec["stages"].as_array().unwrap();
    assert_eq!(stages[0]["state"], "failed");
    assert_eq!(stages[0]["clusters"][0]["state"], "failed");
    assert!(
        stages[0]["clusters"][0]["runIds"]
            .as_array()
            .is_some_and(|r| r.len() == 1),
        "{rec}"
    );
    for s in &stages[1..] {
        assert_eq!(s["state"], "pending", "{s}");
        assert_eq!(s["clusters"][0]["state"], "pending", "{s}");
    }
    // The failed cluster's own rollout halted on its node (exit 5), and so does the fleet.
    assert_eq!(stages[0]["clusters"][0]["exitCode"], 5, "{rec}");
    run.assert_code(5);
    // The event logs: stage 2 and 3 saw nothing at all.
    assert_eq!(touched(&fleet, "aks-staging-1"), 0);
    assert_eq!(touched(&fleet, "aks-prod-1"), 0);
    assert!(
        fleet.cluster("aks-staging-1").lease().is_none(),
        "its lock was never taken"
    );
    assert!(run.stderr.contains("the later stages did not start"), "{}", run.stderr);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_of_a_later_stage_that_cannot_start_stops_the_fleet_before_its_first_stage() {
    skip_unless_root!();
    let fleet = Fleet::start(&scenario(1.0)).await;
    fleet
        .cluster("aks-prod-1")
        .sim
        .fault(aks_sim::Fault::ApiServerDown)
        .expect("the fault applies");
    // An API server that does not answer is given up on after 3 s (as many tries as usual).
    let stages = [
        "fleet",
        "apply",
        "--stage",
        "env=dev",
        "--stage",
        "env=staging",
        "--stage",
        "env=prod",
        "--request-timeout",
        "3",
    ];
    // The dry run shows each cluster's plan, and the one that would not start.
    let mut dry: Vec<&str> = stages.to_vec();
    dry.extend(apply_args(&["--dry-run", "-o", "json"]).into_iter().skip(1));
    let plan = fleet.run(&dry).await;
    assert_ne!(plan.code, 0, "a run would not start: {}", plan.stderr);
    let rows = plan.json();
    assert_eq!(clusters_of(&rows), CLUSTERS, "{rows}");
    for c in ["aks-dev-1", "aks-staging-1"] {
        let r = row(&rows, c);
        assert_eq!(r["patch"], 1, "{r}");
        assert_eq!(r["reboot"], 1, "the pending kernel: {r}");
        assert_eq!(r["error"], Value::Null, "{r}");
    }
    let prod = row(&rows, "aks-prod-1");
    assert_eq!(prod["stage"], "env=prod");
    assert!(prod["error"].as_str().is_some_and(|e| !e.is_empty()), "{prod}");
    assert_eq!(prod["exitCode"], plan.code, "{prod}");

    // The run: the pre-flight of every stage's clusters comes before the first stage.
    let mut args: Vec<&str> = stages.to_vec();
    args.extend(apply_args(&["-o", "json"]).into_iter().skip(1));
    let run = fleet.run(&args).await;
    run.assert_code(plan.code);
    assert!(
        run.stderr.contains("rg-prod/aks-prod-1: pre-flight: "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("the pre-flight failed on 1 of 3 cluster(s)")
            && run.stderr.contains("no stage started; nothing was changed"),
        "{}",
        run.stderr
    );
    for c in CLUSTERS {
        assert_eq!(touched(&fleet, c), 0, "{c} untouched");
    }
    assert!(fleet.cluster("aks-dev-1").lease().is_none(), "no lock was taken");
    let mut resume = vec!["fleet", "apply", "--resume"];
    resume.extend(apply_args(&["-o", "json"]).into_iter().skip(1));
    let again = fleet.run(&resume).await;
    assert!(
        again.stderr.contains("there is no fleet run to resume"),
        "no fleet run was recorded: {}",
        again.stderr
    );

    // Back up: the dry run is clean and changes nothing.
    fleet
        .cluster("aks-prod-1")
        .sim
        .fault(aks_sim::Fault::ApiServerUp)
        .expect("the fault applies");
    let plan = fleet.run(&dry).await;
    plan.assert_code(0);
    assert_eq!(row(&plan.json(), "aks-prod-1")["patch"], 1);
    for c in CLUSTERS {
        assert_eq!(touched(&fleet, c), 0, "{c} untouched by the dry run");
    }
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_mid_stage_stops_at_the_safe_point_and_resume_finishes_the_fleet() {
    skip_unless_root!();
    // Two nodes a cluster: Ctrl-C during the first leaves the second to the resume.
    let fleet = Fleet::start(&scenario_of(3.0, 2)).await;
    let mut args = vec![
        "fleet",
        "apply",
        "--fleet",
        "rg-fleet/shop-fleet",
        "--update-strategy",
        "dev-then-rest",
    ];
    args.extend(apply_args(&["-o", "json"]).into_iter().skip(1));
    let job = fleet.start_job(&args);
    job.wait_for_stderr("the dev cluster's node cordoned", |e| {
        e.lines()
            .any(|l| l.starts_with("rg-dev/aks-dev-1: ") && l.contains("cordoned"))
    })
    .await;
    job.signal(libc::SIGINT);
    let run = job.finish().await;
    run.assert_code(130);
    let rec = run.json();
    assert_eq!(rec["result"], "interrupted", "{rec}");
    assert_eq!(rec["stages"][0]["clusters"][0]["state"], "stopped", "{rec}");
    assert_eq!(rec["stages"][1]["state"], "pending");
    assert_eq!(touched(&fleet, "aks-prod-1"), 0, "stage 2 did not start");
    // The safe point: the node is back in service and the lock released.
    assert!(fleet.cluster("aks-dev-1").lock_free());

    let mut resume = vec!["fleet", "apply", "--resume"];
    resume.extend(apply_args(&["-o", "json"]).into_iter().skip(1));
    let again = fleet.run(&resume).await;
    again.assert_code(0);
    let rec = again.json();
    assert_eq!(rec["result"], "succeeded", "{rec}");
    let dev = &rec["stages"][0]["clusters"][0];
    assert_eq!(dev["state"], "succeeded");
    assert_eq!(
        dev["runIds"].as_array().map(Vec::len),
        Some(2),
        "both of its runs: {dev}"
    );
    for c in CLUSTERS {
        assert_eq!(
            nodes_with(&fleet.cluster(c).events(), "reboot").len(),
            2,
            "{c}: both nodes patched"
        );
        assert_eq!(
            of_kind(&fleet.cluster(c).events(), "reboot").len(),
            2,
            "{c}: each node rebooted once (the interrupted cluster is resumed, not redone)"
        );
    }
    fleet.shutdown().await;
}
