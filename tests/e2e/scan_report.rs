//! `aks-patch scan` and `aks-patch report` end to end against aks-sim: the real
//! binary, real ARM and Kubernetes API over HTTPS, real ssh into the emulated nodes. Each
//! test asserts what a user would check: the exit code, stdout (the data), stderr (warnings,
//! errors, the summary) and, where it matters, the emulator's own event log.

use crate::common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The node the default scenario marks as already waiting for a reboot.
const NEEDS_REBOOT: &str = "aks-user-31417037-vmss000001";
const WINDOWS: [&str; 2] = ["akswin000000", "akswin000001"];
/// The default scenario's Azure Linux node (its pool sits between the system and user pools).
const AZURE_LINUX: &str = "aks-azl-27182818-vmss000000";
const LINUX: [&str; 6] = [
    AZURE_LINUX,
    "aks-system-31415926-vmss000000",
    "aks-system-31415926-vmss000001",
    "aks-user-31417037-vmss000000",
    "aks-user-31417037-vmss000001",
    "aks-user-31417037-vmss000002",
];
const SUMMARY: &str = "1 of 6 Linux nodes needs a reboot (kernel 5.15.0-1073-azure, 6.6.78.1-1.azl3 pending)";

/// The kernel a default-scenario Linux node runs before any patch.
fn kernel_before(node: &str) -> &'static str {
    if node == AZURE_LINUX {
        "6.6.64.2-9.azl3"
    } else {
        "5.15.0-1068-azure"
    }
}

/// `-o json` fields of `scan`, in the order docs/output.md lists them.
const SCAN_FIELDS: [&str; 25] = [
    "name",
    "pool",
    "osType",
    "osSku",
    "status",
    "kernelVersion",
    "runningKernel",
    "pendingUpdates",
    "securityUpdates",
    "security",
    "os",
    "packageManager",
    "endOfSupport",
    "rebootRequired",
    "rebootPackages",
    "pendingKernel",
    "uptime",
    "uptimeSeconds",
    "bootId",
    "nodeImageVersion",
    "latestNodeImageVersion",
    "patchable",
    "note",
    "error",
    "updates",
];

/// `-o json` fields of `report`, in the order docs/output.md lists them.
const REPORT_FIELDS: [&str; 19] = [
    "name",
    "status",
    "roles",
    "age",
    "version",
    "internalIp",
    "externalIp",
    "osImage",
    "kernelVersion",
    "containerRuntime",
    "pool",
    "osType",
    "nodeImageVersion",
    "latestNodeImageVersion",
    "rebootRequired",
    "rebootPackages",
    "lastScanned",
    "lastPatched",
    "inProgress",
];

/// The columns of `kubectl get nodes -o wide`.
const KUBECTL_WIDE: [&str; 10] = [
    "NAME",
    "STATUS",
    "ROLES",
    "AGE",
    "VERSION",
    "INTERNAL-IP",
    "EXTERNAL-IP",
    "OS-IMAGE",
    "KERNEL-VERSION",
    "CONTAINER-RUNTIME",
];

/// A cluster where nothing waits for a reboot, but every node has pending updates.
const NO_REBOOT: &str = r#"
resourceGroup: rg-calm
cluster: {name: aks-calm}
pools:
  - name: nodes
    mode: System
    count: 2
    updates:
      - {name: openssl, from: 3.0.2-0ubuntu1.18, to: 3.0.2-0ubuntu1.19, pocket: jammy-security}
"#;

/// A cluster whose node OS upgrade channel is NodeImage.
const NODE_IMAGE_CHANNEL: &str = r#"
resourceGroup: rg-img
cluster: {name: x, nodeOSUpgradeChannel: NodeImage}
pools:
  - {name: nodes, mode: System, count: 1}
"#;

/// PATH without the emulator's `bin/` (where its stand-in `az` lives).
fn path_without_az(c: &Cluster) -> String {
    let bin = c.sim.state_dir().join("bin");
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
    let kept: Vec<&str> = path
        .split(':')
        .filter(|p| std::path::Path::new(p) != bin && !std::path::Path::new(p).join("az").exists())
        .collect();
    kept.join(":")
}

/// A kubectl-style table: its headers and the cells of every row, cut at the header's
/// column starts (cells such as `Ubuntu 22.04.5 LTS` hold spaces).
fn parse_table(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_else(|| panic!("a header line in:\n{text}"));
    let b = header.as_bytes();
    let starts: Vec<usize> = (0..b.len())
        .filter(|&i| b[i] != b' ' && (i == 0 || b[i - 1] == b' '))
        .collect();
    let cut = |line: &str| -> Vec<String> {
        (0..starts.len())
            .map(|k| {
                let s = starts[k].min(line.len());
                let e = starts.get(k + 1).copied().unwrap_or(line.len()).min(line.len());
                if k + 1 < starts.len() && e < line.len() {
                    assert!(
                        line.as_bytes()[e - 1] == b' ',
                        "cell {k} of `{line}` runs into the next column"
                    );
                }
                line[s..e].trim().to_string()
            })
            .collect()
    };
    let headers = cut(header);
    let rows = lines.filter(|l| !l.trim().is_empty()).map(cut).collect();
    (headers, rows)
}

fn row<'a>(rows: &'a [Vec<String>], name: &str) -> &'a [String] {
    rows.iter()
        .find(|r| r[0] == name)
        .unwrap_or_else(|| panic!("a row for {name} in {rows:?}"))
}

fn cell<'a>(headers: &[String], r: &'a [String], header: &str) -> &'a str {
    let i = headers
        .iter()
        .position(|h| h == header)
        .unwrap_or_else(|| panic!("column {header} in {headers:?}"));
    &r[i]
}

fn by_name(v: &Value) -> BTreeMap<String, Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("a list: {v}"))
        .iter()
        .map(|r| (r["name"].as_str().expect("name").to_string(), r.clone()))
        .collect()
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

/// The scan result without what changes from one run to the next (uptime).
fn without_uptime(mut v: Value) -> Value {
    for r in v.as_array_mut().expect("a list") {
        let o = r.as_object_mut().expect("an object");
        o.remove("uptime");
        o.remove("uptimeSeconds");
    }
    v
}

fn ssh_sessions(c: &Cluster) -> usize {
    of_kind(&c.events(), "ssh-session").len()
}

// ---------------------------------------------------------------------------------------
// Output formats
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scan_prints_table_and_wide_on_stdout_and_the_summary_on_stderr() {
    skip_unless_root!();
    let c = Cluster::start(None).await;

    let t = c.run(&["scan"], true).await;
    t.assert_code(0);
    let (headers, rows) = parse_table(&t.stdout);
    assert_eq!(
        headers,
        ["NAME", "POOL", "STATUS", "KERNEL", "PENDING", "SECURITY", "REBOOT", "ERROR", "NOTE"],
        "{}",
        t.stdout
    );
    assert_eq!(rows.len(), 8, "every node is a row:\n{}", t.stdout);
    let r = row(&rows, NEEDS_REBOOT);
    assert_eq!(
        r[..7],
        [NEEDS_REBOOT, "user", "Ready", "5.15.0-1068-azure", "0", "0", "true"]
    );
    let r = row(&rows, "aks-system-31415926-vmss000000");
    assert_eq!(
        r[..7],
        [
            "aks-system-31415926-vmss000000",
            "system",
            "Ready",
            "5.15.0-1068-azure",
            "6",
            "4",
            "false"
        ]
    );
    // The node cordoned by hand shows as kubectl shows it.
    assert_eq!(
        cell(&headers, row(&rows, "aks-user-31417037-vmss000002"), "STATUS"),
        "Ready,SchedulingDisabled"
    );
    // Data on stdout, the summary on stderr only.
    assert!(!t.stdout.contains("Linux node"), "{}", t.stdout);
    let summary = t
        .stderr
        .lines()
        .find(|l| l.contains("Linux node"))
        .unwrap_or_else(|| panic!("a summary line on stderr:\n{}", t.stderr));
    assert!(summary.starts_with(SUMMARY), "{summary}");
    assert!(summary.contains("5 have pending updates"), "{summary}");
    // No progress bar (nor colour) when stderr is not a terminal.
    assert!(!t.stderr.contains('\r') && !t.stderr.contains('\x1b'), "{:?}", t.stderr);

    let w = c.run(&["scan", "-o", "wide"], true).await;
    w.assert_code(0);
    let (wh, wrows) = parse_table(&w.stdout);
    for extra in ["REBOOT-PACKAGES", "OS-SKU", "NODE-IMAGE", "LATEST-IMAGE", "UPTIME"] {
        assert!(wh.iter().any(|h| h == extra), "wide has {extra}: {wh:?}");
        assert!(!headers.iter().any(|h| h == extra), "table has no {extra}");
    }
    let r = row(&wrows, NEEDS_REBOOT);
    assert_eq!(cell(&wh, r, "REBOOT-PACKAGES"), "linux-image-5.15.0-1073-azure,libc6");
    assert_eq!(cell(&wh, r, "OS-SKU"), "Ubuntu");
    assert_eq!(cell(&wh, r, "NODE-IMAGE"), "AKSUbuntu-2204gen2containerd-202501.12.0");
    assert_eq!(cell(&wh, r, "LATEST-IMAGE"), "AKSUbuntu-2204gen2containerd-202503.05.0");
    assert!(cell(&wh, r, "UPTIME").ends_with('d'), "42 days up: {r:?}");
    let win = row(&wrows, WINDOWS[0]);
    assert_eq!(cell(&wh, win, "OS-SKU"), "Windows2022");
    assert_eq!(
        cell(&wh, win, "LATEST-IMAGE"),
        "AKSWindows-2022-containerd-20348.3328.250314"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scan_json_yaml_tsv_and_none_carry_the_documented_fields() {
    skip_unless_root!();
    let c = Cluster::start(None).await;

    let j = c.run(&["scan", "-o", "json"], true).await;
    j.assert_code(0);
    let json = j.json();
    let rows = by_name(&json);
    assert_eq!(rows.len(), 8);
    for r in json.as_array().unwrap() {
        assert_eq!(keys(r), SCAN_FIELDS, "documented fields, in order");
    }
    let n = &rows[NEEDS_REBOOT];
    assert_eq!(n["rebootRequired"], true);
    assert_eq!(
        n["rebootPackages"],
        serde_json::json!(["linux-image-5.15.0-1073-azure", "libc6"])
    );
    assert_eq!(n["pendingKernel"], "5.15.0-1073-azure");
    assert_eq!(n["pendingUpdates"], 0);
    assert_eq!(n["runningKernel"], "5.15.0-1068-azure");
    assert_eq!(n["osType"], "linux");
    assert_eq!(n["patchable"], true);
    assert!(n["uptimeSeconds"].as_u64().unwrap() >= 42 * 86400, "{n}");
    let s = &rows["aks-system-31415926-vmss000000"];
    assert_eq!(s["pendingUpdates"], 6);
    assert_eq!(s["securityUpdates"], 4);
    assert_eq!(s["rebootRequired"], false);
    assert_eq!(s["pendingKernel"], "5.15.0-1073-azure");
    assert_eq!(s["error"], Value::Null);
    let updates = s["updates"].as_array().unwrap();
    assert_eq!(updates.len(), 6);
    for u in updates {
        assert_eq!(keys(u), ["name", "from", "to", "pockets", "arch", "security"]);
    }
    let openssl = updates.iter().find(|u| u["name"] == "openssl").expect("openssl");
    assert_eq!(openssl["to"], "3.0.2-0ubuntu1.19");
    assert_eq!(openssl["security"], true);
    // The summary stays on stderr: stdout is only the JSON.
    assert!(j.stderr.contains(SUMMARY), "{}", j.stderr);

    // jsonc without a terminal (and with NO_COLOR) is plain JSON; so without NO_COLOR when
    // stdout is a pipe.
    for no_color in [true, false] {
        let r = c
            .run_with(&["scan", "-o", "jsonc"], true, |cmd| {
                if !no_color {
                    cmd.env_remove("NO_COLOR");
                }
            })
            .await;
        r.assert_code(0);
        assert!(!r.stdout.contains('\x1b'), "no colour codes: {:?}", r.stdout);
        assert_eq!(without_uptime(r.json()), without_uptime(json.clone()));
    }

    // yaml and yamlc: the same data.
    for fmt in ["yaml", "yamlc"] {
        let r = c
            .run_with(&["scan", "-o", fmt], true, |cmd| {
                cmd.env_remove("NO_COLOR");
            })
            .await;
        r.assert_code(0);
        assert!(!r.stdout.contains('\x1b'), "{fmt}: no colour codes into a pipe");
        let y: Value =
            serde_yaml_ng::from_str(&r.stdout).unwrap_or_else(|e| panic!("{fmt} parses ({e}):\n{}", r.stdout));
        assert_eq!(without_uptime(y), without_uptime(json.clone()), "{fmt}");
    }

    // tsv: the table's values, in its column order, no header.
    let t = c.run(&["scan"], true).await;
    let (headers, trows) = parse_table(&t.stdout);
    let v = c.run(&["scan", "-o", "tsv"], true).await;
    v.assert_code(0);
    assert!(!v.stdout.contains("NAME"), "no header: {}", v.stdout);
    let lines: Vec<Vec<&str>> = v.stdout.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 8, "{}", v.stdout);
    for l in &lines {
        assert_eq!(
            l.len(),
            headers.len(),
            "one value per table column: {l:?} vs {headers:?}"
        );
    }
    let l = lines.iter().find(|l| l[0] == NEEDS_REBOOT).unwrap();
    assert_eq!(
        l[..7],
        [NEEDS_REBOOT, "user", "Ready", "5.15.0-1068-azure", "0", "0", "True"]
    );
    // Same values as the table, cell for cell (booleans as the Azure CLI prints them,
    // nothing where the table shows a placeholder).
    for l in &lines {
        let tr = row(&trows, l[0]);
        for (i, (tsv, table)) in l.iter().zip(tr).enumerate() {
            let expected = match table.as_str() {
                "true" => "True",
                "false" => "False",
                "-" | "<unknown>" | "<none>" => "",
                other => other,
            };
            assert_eq!(*tsv, expected, "{} column {}", l[0], headers[i]);
        }
    }

    // none: nothing on stdout; the exit code still says what happened.
    let none = c.run(&["scan", "-o", "none"], true).await;
    none.assert_code(0);
    assert_eq!(none.stdout, "");
    let none = c
        .run(&["scan", "-o", "none", "--fail-on", "reboot-required"], true)
        .await;
    none.assert_code(6);
    assert_eq!(none.stdout, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn query_is_applied_before_formatting() {
    skip_unless_root!();
    let c = Cluster::start(None).await;
    let q = "[?rebootRequired].name";

    let r = c.run(&["scan", "--query", q, "-o", "json"], true).await;
    r.assert_code(0);
    assert_eq!(r.json(), serde_json::json!([NEEDS_REBOOT]));

    let r = c.run(&["scan", "--query", q, "-o", "tsv"], true).await;
    r.assert_code(0);
    assert_eq!(r.stdout, format!("{NEEDS_REBOOT}\n"));

    let r = c.run(&["scan", "--query", q, "-o", "yaml"], true).await;
    r.assert_code(0);
    let y: Value = serde_yaml_ng::from_str(&r.stdout).unwrap();
    assert_eq!(y, serde_json::json!([NEEDS_REBOOT]));

    // A list of strings as a table: the Azure CLI's `Result` column.
    let r = c.run(&["scan", "--query", q], true).await;
    r.assert_code(0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0].trim_end(), "Result", "{}", r.stdout);
    assert!(lines[1].chars().all(|ch| ch == '-'), "{}", r.stdout);
    assert_eq!(lines[2..], [NEEDS_REBOOT]);

    // A projection as a table: az-style headers in the query's order, dashes under them.
    let r = c
        .run(
            &[
                "scan",
                "--query",
                "[?osType=='linux'].{node: name, pending: pendingUpdates, reboot: rebootRequired}",
            ],
            true,
        )
        .await;
    r.assert_code(0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    let head: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(head, ["Node", "Pending", "Reboot"], "{}", r.stdout);
    assert!(
        lines[1].split_whitespace().all(|d| d.chars().all(|ch| ch == '-')),
        "{}",
        r.stdout
    );
    assert_eq!(lines.len(), 2 + LINUX.len(), "only the Linux nodes: {}", r.stdout);
    let reboot_line = lines.iter().find(|l| l.starts_with(NEEDS_REBOOT)).unwrap();
    assert_eq!(
        reboot_line.split_whitespace().collect::<Vec<_>>(),
        [NEEDS_REBOOT, "0", "True"]
    );

    // The same for report (from the last scan, which the runs above recorded).
    let r = c
        .run(&["report", "--query", "[?osType=='windows'].name", "-o", "json"], true)
        .await;
    r.assert_code(0);
    assert_eq!(r.json(), serde_json::json!(WINDOWS));
    let r = c
        .run(&["report", "--query", "[?rebootRequired].name", "-o", "tsv"], true)
        .await;
    r.assert_code(0);
    assert_eq!(r.stdout, format!("{NEEDS_REBOOT}\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn report_table_json_and_yaml_show_reboot_required_and_last_patched() {
    skip_unless_root!();
    let c = Cluster::start(None).await;
    let scanned = c.run(&["scan", "-o", "none"], true).await;
    scanned.assert_code(0);

    let t = c.run(&["report"], true).await;
    t.assert_code(0);
    let (headers, rows) = parse_table(&t.stdout);
    assert_eq!(
        headers,
        [
            "NAME",
            "STATUS",
            "ROLES",
            "AGE",
            "VERSION",
            "NODE-IMAGE",
            "REBOOT-REQUIRED",
            "LAST-PATCHED"
        ],
        "{}",
        t.stdout
    );
    assert_eq!(rows.len(), 8);
    assert_eq!(
        row(&rows, NEEDS_REBOOT),
        [
            NEEDS_REBOOT,
            "Ready",
            "agent",
            "42d",
            "v1.31.5",
            "AKSUbuntu-2204gen2containerd-202501.12.0",
            "true",
            "<never>"
        ]
    );
    assert_eq!(cell(&headers, row(&rows, WINDOWS[0]), "REBOOT-REQUIRED"), "<unknown>");

    let j = c.run(&["report", "-o", "json"], true).await;
    j.assert_code(0);
    let json = j.json();
    for r in json.as_array().unwrap() {
        assert_eq!(keys(r), REPORT_FIELDS, "documented fields, in order");
    }
    let rows_j = by_name(&json);
    let n = &rows_j[NEEDS_REBOOT];
    assert_eq!(n["rebootRequired"], true);
    assert_eq!(
        n["rebootPackages"],
        serde_json::json!(["linux-image-5.15.0-1073-azure", "libc6"])
    );
    assert_eq!(n["pool"], "user");
    assert_eq!(n["osType"], "linux");
    assert_eq!(n["latestNodeImageVersion"], "AKSUbuntu-2204gen2containerd-202503.05.0");
    assert_eq!(n["lastPatched"], Value::Null);
    let scanned_at = n["lastScanned"].as_str().expect("lastScanned after a scan");
    scanned_at.parse::<jiff::Timestamp>().expect("lastScanned is RFC 3339");
    assert_eq!(rows_j[WINDOWS[1]]["rebootRequired"], Value::Null);
    assert_eq!(rows_j[WINDOWS[1]]["osType"], "windows");

    for fmt in ["yaml", "yamlc", "jsonc"] {
        let r = c.run(&["report", "-o", fmt], true).await;
        r.assert_code(0);
        assert!(!r.stdout.contains('\x1b'), "{fmt}: no colour with NO_COLOR");
        let v: Value = serde_yaml_ng::from_str(&r.stdout).unwrap_or_else(|e| panic!("{fmt} parses ({e})"));
        assert_eq!(v, json, "{fmt}");
    }

    let v = c.run(&["report", "-o", "tsv"], true).await;
    v.assert_code(0);
    let lines: Vec<Vec<&str>> = v.stdout.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 8);
    let l = lines.iter().find(|l| l[0] == NEEDS_REBOOT).unwrap();
    assert_eq!(
        *l,
        [
            NEEDS_REBOOT,
            "Ready",
            "agent",
            "42d",
            "v1.31.5",
            "AKSUbuntu-2204gen2containerd-202501.12.0",
            "True",
            ""
        ]
    );

    let none = c.run(&["report", "-o", "none"], true).await;
    none.assert_code(0);
    assert_eq!(none.stdout, "");
}

// ---------------------------------------------------------------------------------------
// report --output wide against kubectl; report uses no SSH
// ---------------------------------------------------------------------------------------

async fn kubectl_wide(c: &Cluster) -> String {
    let (ok, out, err) = c.kubectl(&["get", "nodes", "-o", "wide"]).await;
    assert!(ok, "{err}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn report_wide_is_kubectl_wide_then_patch_columns() {
    skip_unless_root!();
    let c = Cluster::start(None).await;

    // Before any scan: REBOOT-REQUIRED is unknown, and stderr says why.
    let before = c.run(&["report", "-o", "wide"], true).await;
    let kubectl = kubectl_wide(&c).await;
    let again = c.run(&["report", "-o", "wide"], true).await;
    before.assert_code(0);
    again.assert_code(0);
    assert!(before.stderr.contains("never scanned"), "{}", before.stderr);

    let (kh, krows) = parse_table(&kubectl);
    assert_eq!(kh, KUBECTL_WIDE, "kubectl's own columns:\n{kubectl}");
    // Byte for byte: each of our lines is kubectl's line (whose last column is not padded),
    // then the padding and our own columns. (AGE may tick over between the runs.)
    assert_eq!(before.stdout.lines().count(), kubectl.lines().count());
    for (i, kl) in kubectl.lines().enumerate() {
        let extends = |out: &str| {
            out.lines()
                .nth(i)
                .is_some_and(|l| l.starts_with(kl) && l[kl.len()..].starts_with("   "))
        };
        assert!(
            extends(&before.stdout) || extends(&again.stdout),
            "line {i} is not kubectl's:\n{kl}\n{}",
            before.stdout.lines().nth(i).unwrap_or_default()
        );
    }
    let (h, rows) = parse_table(&before.stdout);
    let (_, rows_again) = parse_table(&again.stdout);
    assert_eq!(
        h[..10],
        kh[..],
        "the first ten columns are kubectl's:\n{}",
        before.stdout
    );
    assert_eq!(
        h[10..],
        ["NODE-IMAGE", "REBOOT-REQUIRED", "LAST-PATCHED", "IN-PROGRESS"]
    );
    let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    let knames: Vec<&str> = krows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, knames, "the same nodes in the same order");
    for (i, kr) in krows.iter().enumerate() {
        for (col, header) in kh.iter().enumerate() {
            if header == "AGE" {
                // AGE may tick over between the two runs: kubectl's must be one of ours.
                assert!(
                    kr[col] == rows[i][col] || kr[col] == rows_again[i][col],
                    "{} AGE: kubectl {} vs {} / {}",
                    kr[0],
                    kr[col],
                    rows[i][col],
                    rows_again[i][col]
                );
            } else {
                assert_eq!(rows[i][col], kr[col], "{} column {header}", kr[0]);
            }
        }
        assert_eq!(cell(&h, &rows[i], "REBOOT-REQUIRED"), "<unknown>", "{}", kr[0]);
        assert_eq!(cell(&h, &rows[i], "LAST-PATCHED"), "<never>", "{}", kr[0]);
    }
    assert_eq!(
        cell(&h, row(&rows, WINDOWS[0]), "NODE-IMAGE"),
        "AKSWindows-2022-containerd-20348.3207.250214"
    );
    assert_eq!(
        cell(&h, row(&rows, NEEDS_REBOOT), "NODE-IMAGE"),
        "AKSUbuntu-2204gen2containerd-202501.12.0"
    );

    // After a scan, REBOOT-REQUIRED is filled in for the Linux nodes.
    c.run(&["scan", "-o", "none"], true).await.assert_code(0);
    let sessions = ssh_sessions(&c);
    assert!(sessions >= LINUX.len(), "the scan used SSH");
    let after = c.run(&["report", "-o", "wide"], true).await;
    after.assert_code(0);
    assert!(!after.stderr.contains("never scanned"), "{}", after.stderr);
    let (h, rows) = parse_table(&after.stdout);
    for n in LINUX {
        let expected = if n == NEEDS_REBOOT { "true" } else { "false" };
        assert_eq!(cell(&h, row(&rows, n), "REBOOT-REQUIRED"), expected, "{n}");
    }
    for n in WINDOWS {
        assert_eq!(cell(&h, row(&rows, n), "REBOOT-REQUIRED"), "<unknown>", "{n}");
    }
    assert_eq!(ssh_sessions(&c), sessions, "report opened no SSH session");

    // report needs no SSH at all: with sshd down on every Linux node it still works.
    for n in LINUX {
        c.sim.fault(aks_sim::Fault::SshDown { node: n.to_string() }).unwrap();
    }
    let down = c.run(&["report", "-o", "wide"], true).await;
    down.assert_code(0);
    let (h2, rows2) = parse_table(&down.stdout);
    assert_eq!(h2, h);
    assert_eq!(cell(&h2, row(&rows2, NEEDS_REBOOT), "REBOOT-REQUIRED"), "true");
    assert!(!down.stderr.contains("error"), "{}", down.stderr);
    assert_eq!(ssh_sessions(&c), sessions, "report opened no SSH session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn report_does_not_trust_a_scan_from_before_a_reboot_into_the_new_kernel() {
    skip_unless_root!();
    let c = Cluster::start(None).await;
    c.run(&["scan", "-o", "none"], true).await.assert_code(0);
    let r = c.run(&["report", "-o", "json"], true).await;
    assert_eq!(by_name(&r.json())[NEEDS_REBOOT]["rebootRequired"], true);

    // Someone (kured, an operator) reboots the node outside aks-patch: it boots the
    // pending kernel and the reboot marker is gone.
    c.reboot_by_hand(NEEDS_REBOOT).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = nodes_with(&c.events(), "node-ready").contains(NEEDS_REBOOT);
        if ready && c.kernel(NEEDS_REBOOT) == "5.15.0-1073-azure" {
            break;
        }
        assert!(Instant::now() < deadline, "the node came back with its new kernel");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // report must not keep saying the node needs a reboot.
    let r = c.run(&["report", "-o", "json"], true).await;
    r.assert_code(0);
    let n = &by_name(&r.json())[NEEDS_REBOOT];
    assert_ne!(n["rebootRequired"], true, "a scan from before the reboot is stale: {n}");
    assert_eq!(n["kernelVersion"], "5.15.0-1073-azure");
    // A new scan tells the truth again.
    c.run(&["scan", "-o", "none"], true).await.assert_code(0);
    let r = c.run(&["report", "-o", "json"], true).await;
    assert_eq!(by_name(&r.json())[NEEDS_REBOOT]["rebootRequired"], false);
}

// ---------------------------------------------------------------------------------------
// Nodes: unreachable, Windows, --fail-on
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scan_lists_an_unreachable_node_as_a_row_with_its_error() {
    skip_unless_root!();
    let c = Cluster::start(None).await;
    let down = "aks-system-31415926-vmss000001";
    c.sim.fault(aks_sim::Fault::SshDown { node: down.into() }).unwrap();

    let r = c.run(&["scan", "-o", "json"], true).await;
    r.assert_code(5);
    let rows = by_name(&r.json());
    assert_eq!(rows.len(), 8, "every node is still listed");
    let d = &rows[down];
    let err = d["error"].as_str().unwrap_or_else(|| panic!("an error: {d}"));
    assert!(err.contains(down), "{err}");
    assert!(err.contains("Connection refused") || err.contains("SSH"), "{err}");
    assert_eq!(d["rebootRequired"], Value::Null);
    assert_eq!(d["runningKernel"], Value::Null);
    for n in LINUX.iter().filter(|n| **n != down) {
        assert_eq!(rows[*n]["error"], Value::Null, "{n}");
        assert_eq!(rows[*n]["runningKernel"], kernel_before(n), "{n}");
    }
    assert_eq!(rows[NEEDS_REBOOT]["rebootRequired"], true);
    assert!(
        r.stderr.contains("1 could not be scanned"),
        "the summary counts it: {}",
        r.stderr
    );
    assert!(
        r.stderr.lines().any(|l| l.starts_with("warning:") && l.contains(down)),
        "a warning names the node: {}",
        r.stderr
    );

    // The table shows the error in the node's row.
    let t = c.run(&["scan"], true).await;
    t.assert_code(5);
    let (h, trows) = parse_table(&t.stdout);
    let d = row(&trows, down);
    assert_eq!(cell(&h, d, "ERROR"), err, "the row holds the error:\n{}", t.stdout);
    assert_eq!(cell(&h, d, "KERNEL"), "<unknown>");
    assert_eq!(cell(&h, d, "REBOOT"), "-");
    let ok = row(&trows, NEEDS_REBOOT);
    assert_eq!(cell(&h, ok, "REBOOT"), "true");
    assert_eq!(cell(&h, ok, "ERROR"), "");
    assert!(cell(&h, row(&trows, WINDOWS[0]), "NOTE").contains("--node-image-only"));

    // --fail-on does not hide that nodes failed.
    let f = c
        .run(&["scan", "-o", "none", "--fail-on", "reboot-required"], true)
        .await;
    f.assert_code(5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn windows_nodes_are_listed_not_patchable_with_the_node_image_hint() {
    skip_unless_root!();
    let c = Cluster::start(None).await;
    let r = c.run(&["scan", "-o", "json"], true).await;
    r.assert_code(0);
    let rows = by_name(&r.json());
    let hint = "az aks nodepool upgrade -g rg-shop-prod --cluster-name aks-shop-prod -n win --node-image-only";
    for n in WINDOWS {
        let w = &rows[n];
        assert_eq!(w["osType"], "windows", "{w}");
        assert_eq!(w["pool"], "win");
        assert_eq!(w["osSku"], "Windows2022");
        assert_eq!(w["patchable"], false);
        assert_eq!(w["error"], Value::Null, "not an error: {w}");
        assert_eq!(w["rebootRequired"], Value::Null);
        let note = w["note"].as_str().unwrap_or_else(|| panic!("a note: {w}"));
        assert!(note.contains(hint), "{note}");
    }
    // Nobody tried to SSH into them.
    let sessions = nodes_with(&c.events(), "ssh-session");
    for n in WINDOWS {
        assert!(!sessions.contains(n), "no SSH to {n}");
    }
    for n in LINUX {
        assert!(sessions.contains(n), "SSH to {n}");
    }
    assert!(
        r.stderr.contains("2 Windows nodes are not patched in place") && r.stderr.contains("--node-image-only"),
        "{}",
        r.stderr
    );

    // In the table, the note is on the Windows rows.
    let t = c.run(&["scan"], true).await;
    let line = t.stdout.lines().find(|l| l.starts_with(WINDOWS[0])).unwrap();
    assert!(line.contains(hint), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fail_on_turns_the_scan_result_into_an_exit_code() {
    skip_unless_root!();
    let busy = Cluster::start(None).await;
    let calm = Cluster::start(Some(NO_REBOOT)).await;

    let r = busy
        .run(&["scan", "--fail-on", "reboot-required", "-o", "none"], true)
        .await;
    r.assert_code(6);
    assert!(r.stderr.contains(SUMMARY), "{}", r.stderr);
    let r = busy.run(&["scan", "--fail-on", "pending", "-o", "none"], true).await;
    r.assert_code(6);

    let r = calm.run(&["scan", "--fail-on", "reboot-required"], true).await;
    r.assert_code(0);
    assert!(
        r.stderr.contains("none of 2 Linux nodes needs a reboot"),
        "{}",
        r.stderr
    );
    let r = calm.run(&["scan", "--fail-on", "pending", "-o", "none"], true).await;
    r.assert_code(6);
    assert!(r.stderr.contains("2 have pending updates"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_image_channel_warns_that_aks_reimages_the_nodes() {
    skip_unless_root!();
    let c = Cluster::start(Some(NODE_IMAGE_CHANNEL)).await;
    for cmd in ["scan", "report"] {
        let r = c.run(&[cmd, "-o", "none"], true).await;
        r.assert_code(0);
        let warning = r
            .stderr
            .lines()
            .find(|l| l.starts_with("warning:") && l.contains("NodeImage"))
            .unwrap_or_else(|| panic!("{cmd}: a NodeImage warning:\n{}", r.stderr));
        assert!(warning.contains("re-images"), "{warning}");
        assert!(warning.contains("--node-image-only"), "{warning}");
        assert!(
            warning.contains("az aks nodepool upgrade -g rg-img --cluster-name x"),
            "{warning}"
        );
        // --only-show-errors silences it.
        let q = c.run(&[cmd, "-o", "none", "--only-show-errors"], true).await;
        q.assert_code(0);
        assert!(!q.stderr.contains("NodeImage"), "{}", q.stderr);
    }

    // The default (Unmanaged) channel gets no such warning.
    let d = Cluster::start(Some(NO_REBOOT)).await;
    let r = d.run(&["report", "-o", "none"], true).await;
    r.assert_code(0);
    assert!(!r.stderr.contains("re-images"), "{}", r.stderr);
}

// ---------------------------------------------------------------------------------------
// ARM: 404, 429, 5xx
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_resource_group_or_cluster_exits_3_with_a_hint() {
    skip_unless_root!();
    let c = Cluster::start(None).await;
    let ep = c.sim.endpoints().clone();
    for cmd in ["scan", "report"] {
        let r = c.run(&[cmd, "-g", "rg-nope", "-n", &ep.cluster_name], false).await;
        r.assert_code(3);
        assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
        assert!(r.stderr.contains("rg-nope"), "names the group: {}", r.stderr);
        assert!(
            r.stderr.lines().any(|l| l.starts_with("hint:") && l.contains("-g")),
            "{}",
            r.stderr
        );
        assert_eq!(r.stdout, "");

        let r = c.run(&[cmd, "-g", &ep.resource_group, "-n", "aks-nope"], false).await;
        r.assert_code(3);
        assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
        assert!(r.stderr.contains("aks-nope"), "names the cluster: {}", r.stderr);
        assert!(
            r.stderr.lines().any(|l| l.starts_with("hint:") && l.contains("-n")),
            "{}",
            r.stderr
        );
        assert_eq!(r.stdout, "");
    }
    assert_eq!(ssh_sessions(&c), 0, "no node was contacted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn arm_throttling_is_retried_after_retry_after() {
    skip_unless_root!();
    let c = Cluster::start(None).await;
    c.sim
        .fault(aks_sim::Fault::ArmThrottle {
            count: 2,
            retry_after: 1,
        })
        .unwrap();
    let started = Instant::now();
    let r = c
        .run(&["scan", "-o", "json", "--query", "[?rebootRequired].name"], true)
        .await;
    r.assert_code(0);
    assert_eq!(r.json(), serde_json::json!([NEEDS_REBOOT]));
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After was honoured: {:?}",
        started.elapsed()
    );
    assert_eq!(
        c.sim.status()["faults"]["armThrottleLeft"],
        0,
        "both 429s were served and retried"
    );
    assert!(!r.stderr.contains("error"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn persistent_arm_5xx_is_a_clear_error_not_a_hang() {
    skip_unless_root!();
    let c = Cluster::start(None).await;
    c.sim
        .fault(aks_sim::Fault::ArmError { count: 50, status: 503 })
        .unwrap();
    let started = Instant::now();
    let r = c.run_with(&["scan"], true, |_| {}).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(150), "gave up in bounded time: {took:?}");
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
    assert!(r.stderr.contains("503"), "says what ARM answered: {}", r.stderr);
    assert!(r.stderr.contains("attempts"), "says it retried: {}", r.stderr);
    assert_eq!(r.stdout, "");
    let left = c.sim.status()["faults"]["armErrorLeft"].as_u64().unwrap();
    assert!(left < 50 - 1, "it did retry ({} requests)", 50 - left);
    assert_eq!(ssh_sessions(&c), 0);
}

// ---------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_the_api_server_refuses_exits_4_until_it_accepts_tokens_again() {
    skip_unless_root!();
    let c = Cluster::start(None).await;
    let before = c.run(&["scan", "-o", "none"], true).await;
    before.assert_code(0);
    c.sim.fault(aks_sim::Fault::ExpiredToken).unwrap();

    // The `az` stand-in hands out a fresh ARM token (as the real CLI would), so ARM works;
    // the emulator's Kubernetes API keeps refusing every token issued so far, including the
    // kubeconfig's. That is an authentication failure: exit 4 with a clear message.
    for cmd in ["scan", "report"] {
        let r = c.run(&[cmd], true).await;
        r.assert_code(4);
        assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
        assert!(r.stderr.contains("401"), "{}", r.stderr);
        assert!(r.stderr.contains("refused"), "{}", r.stderr);
        assert!(!r.stderr.contains("ARM returned"), "ARM was fine: {}", r.stderr);
        assert_eq!(r.stdout, "");
    }

    // Once the API server accepts the token again, the same command works with the fresh
    // ARM token (the expired one is never valid again).
    c.sim.fault(aks_sim::Fault::Clear).unwrap();
    let r = c
        .run(&["scan", "-o", "json", "--query", "[?rebootRequired].name"], true)
        .await;
    r.assert_code(0);
    assert_eq!(r.json(), serde_json::json!([NEEDS_REBOOT]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missing_credentials_exit_4_with_a_hint() {
    skip_unless_root!();
    let c = Cluster::start(None).await;
    let path = path_without_az(&c);
    let no_creds = |cmd: &mut tokio::process::Command| {
        cmd.env("PATH", &path)
            .env_remove("AZURE_CLIENT_ID")
            .env_remove("AZURE_CLIENT_SECRET")
            .env_remove("AZURE_FEDERATED_TOKEN_FILE")
            .env_remove("IDENTITY_ENDPOINT")
            .env_remove("MSI_ENDPOINT")
            .env_remove("AKS_PATCH_MANAGED_IDENTITY");
    };
    for cmd in ["scan", "report"] {
        for auth in ["auto", "cli"] {
            let r = c.run_with(&[cmd, "--auth", auth], true, no_creds).await;
            r.assert_code(4);
            assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
            assert!(
                r.stderr.contains("Azure CLI"),
                "says which credential failed: {}",
                r.stderr
            );
            assert!(
                r.stderr
                    .lines()
                    .any(|l| l.starts_with("hint:") && l.contains("az login")),
                "{}",
                r.stderr
            );
            assert_eq!(r.stdout, "");
        }
    }
    // Without AZURE_SUBSCRIPTION_ID either, the subscription cannot be found: still a
    // credential problem (nobody is signed in), with the ways out.
    let r = c
        .run_with(&["scan"], true, |cmd| {
            no_creds(cmd);
            cmd.env_remove("AZURE_SUBSCRIPTION_ID");
        })
        .await;
    r.assert_code(4);
    assert!(r.stderr.contains("subscription"), "{}", r.stderr);
    assert!(
        r.stderr
            .lines()
            .any(|l| l.starts_with("hint:") && l.contains("--subscription")),
        "{}",
        r.stderr
    );
    assert_eq!(ssh_sessions(&c), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubeconfig_alone_needs_no_arm() {
    skip_unless_root!();
    let c = Cluster::start(None).await;
    // Any ARM request would fail (and use up one of these).
    c.sim
        .fault(aks_sim::Fault::ArmError { count: 50, status: 500 })
        .unwrap();
    let kubeconfig = c.sim.state_dir().join("kubeconfig");
    let kc = kubeconfig.to_str().unwrap();
    let path = path_without_az(&c);
    let no_arm = |cmd: &mut tokio::process::Command| {
        cmd.env_remove("AKS_PATCH_ARM_ENDPOINT")
            .env_remove("AZURE_AUTHORITY_HOST")
            .env_remove("AZURE_SUBSCRIPTION_ID")
            .env_remove("AZURE_TENANT_ID")
            .env_remove("KUBECONFIG")
            .env("PATH", &path);
    };
    let r = c
        .run_with(&["scan", "--kubeconfig", kc, "-o", "json"], false, no_arm)
        .await;
    r.assert_code(0);
    let rows = by_name(&r.json());
    assert_eq!(rows.len(), 8);
    assert_eq!(rows[NEEDS_REBOOT]["rebootRequired"], true);
    assert_eq!(rows["aks-system-31415926-vmss000000"]["pendingUpdates"], 6);
    let note = rows[WINDOWS[0]]["note"].as_str().unwrap();
    assert!(note.contains("--node-image-only"), "{note}");
    assert!(r.stderr.contains(SUMMARY), "{}", r.stderr);

    let r = c
        .run_with(
            &["report", "--kubeconfig", kc, "--context", "aks-shop-prod"],
            false,
            no_arm,
        )
        .await;
    r.assert_code(0);
    let (h, rows) = parse_table(&r.stdout);
    assert_eq!(cell(&h, row(&rows, NEEDS_REBOOT), "REBOOT-REQUIRED"), "true");

    assert_eq!(c.sim.status()["faults"]["armErrorLeft"], 50, "no ARM request was made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn debug_output_never_shows_a_token() {
    skip_unless_root!();
    let c = Cluster::start(None).await;
    let kubeconfig = std::fs::read_to_string(c.sim.state_dir().join("kubeconfig")).unwrap();
    let kube_token = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("token:"))
        .expect("a token in the kubeconfig")
        .trim()
        .to_string();
    let mut az = tokio::process::Command::new(c.sim.state_dir().join("bin/az"));
    az.args(["account", "get-access-token", "--query", "accessToken", "-o", "tsv"]);
    for (k, v) in c.sim.env() {
        az.env(k, v);
    }
    let az = Run::from(output_within(az, Duration::from_secs(30), "az").await);
    az.assert_code(0);
    let arm_token = az.stdout.trim().to_string();
    assert!(kube_token.len() > 16 && arm_token.len() > 16, "real tokens to look for");
    let admin_token = c.sim.shared.tokens.kube_admin.clone();

    let runs = [
        c.run_with(&["scan", "--debug", "-o", "json"], true, |_| {}).await,
        c.run_with(&["report", "--debug", "-o", "wide"], true, |_| {}).await,
        c.run_with(&["report", "--debug", "--admin", "-o", "yaml"], true, |_| {})
            .await,
        // Even with every library's trace logging on.
        c.run_with(&["scan", "--debug", "--verbose", "-o", "json"], true, |cmd| {
            cmd.env("AKS_PATCH_LOG", "trace");
        })
        .await,
    ];
    for r in &runs {
        r.assert_code(0);
        assert!(r.stderr.contains("DEBUG"), "debug logging is on: {}", r.stderr);
        for (what, secret) in [("kube", &kube_token), ("ARM", &arm_token), ("kube admin", &admin_token)] {
            assert!(!r.stdout.contains(secret.as_str()), "the {what} token is on stdout");
            assert!(!r.stderr.contains(secret.as_str()), "the {what} token is on stderr");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_query_output_target_or_kubeconfig_is_a_usage_error_before_any_contact() {
    skip_unless_root!();
    let c = Cluster::start(None).await;
    let bad = "[?rebootRequired";

    // A bad --query fails before anything is contacted, even with nothing to contact.
    for cmd in ["scan", "report"] {
        let r = c
            .run_with(&[cmd, "--query", bad], true, |cmd| {
                cmd.env("AKS_PATCH_ARM_ENDPOINT", "https://127.0.0.1:1")
                    .env("AZURE_AUTHORITY_HOST", "https://127.0.0.1:1");
            })
            .await;
        r.assert_code(2);
        assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
        assert!(r.stderr.contains(bad), "names the expression: {}", r.stderr);
        assert_eq!(r.stdout, "");
        let r = c
            .run(&[cmd, "--kubeconfig", "/nonexistent/kubeconfig", "--query", bad], false)
            .await;
        r.assert_code(2);
        assert!(r.stderr.contains(bad), "{}", r.stderr);
    }

    // A bad -o: clap names the value and the choices.
    let r = c.run(&["scan", "-o", "xml"], true).await;
    r.assert_code(2);
    assert!(
        r.stderr.contains("'xml'") && r.stderr.contains("--output"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("json") && r.stderr.contains("tsv"), "{}", r.stderr);
    assert_eq!(r.stdout, "");

    // A missing -g says what is missing.
    for cmd in ["scan", "report"] {
        let r = c.run(&[cmd, "-n", "aks-shop-prod"], false).await;
        r.assert_code(2);
        assert!(r.stderr.contains("--resource-group"), "{}", r.stderr);
        assert_eq!(r.stdout, "");
    }

    // A kubeconfig that is not there.
    for cmd in ["scan", "report"] {
        let r = c.run(&[cmd, "--kubeconfig", "/nonexistent/kubeconfig"], false).await;
        r.assert_code(2);
        assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
        assert!(
            r.stderr.contains("/nonexistent/kubeconfig"),
            "names the file: {}",
            r.stderr
        );
        assert_eq!(r.stdout, "");
    }
    assert_eq!(ssh_sessions(&c), 0, "no node was contacted");
}

/// A node rebooted outside aks-patch (kured, an operator) with the same kernel: the last
/// scan's "reboot required" no longer holds, and report must not repeat it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn report_forgets_reboot_required_after_a_reboot_with_the_same_kernel() {
    skip_unless_root!();
    let node = small_node(0);
    let yaml = format!(
        "{}nodes:\n  {node}:\n    updates: []\n    rebootRequired: [libc6]\n",
        SMALL
    );
    let c = Cluster::start(Some(&yaml)).await;
    c.run(&["scan", "-o", "none"], true).await.assert_code(0);
    let row = |v: &serde_json::Value| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == node)
            .unwrap()
            .clone()
    };
    let before = c.run(&["report", "-o", "json"], true).await;
    assert_eq!(row(&before.json())["rebootRequired"], true);

    // Reboot it by hand, as kured would.
    c.reboot_by_hand(&node).await;
    c.wait_for_event("node-ready", Some(&node), Duration::from_secs(60))
        .await;
    assert_eq!(
        c.kernel(&node),
        "5.15.0-1068-azure",
        "same kernel after a libc-only reboot"
    );
    let after = c.run(&["report", "-o", "json"], true).await;
    after.assert_code(0);
    assert!(
        row(&after.json())["rebootRequired"].is_null(),
        "the stale scan is not shown: {}",
        after.stdout
    );
}

/// scan changes nothing on the nodes; `--refresh` runs `apt-get update` and nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scan_changes_nothing_and_refresh_only_updates_the_lists() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    let changes = |c: &Cluster| -> Vec<String> {
        c.events()
            .iter()
            .filter(|e| {
                [
                    "cordon",
                    "uncordon",
                    "eviction",
                    "reboot",
                    "apt-upgrade",
                    "apt-update",
                    "pod-deleted",
                ]
                .contains(&e.kind.as_str())
            })
            .map(|e| format!("{} {}", e.kind, e.node.clone().unwrap_or_default()))
            .collect()
    };
    let plain = c.run(&["scan", "-o", "json"], true).await;
    plain.assert_code(0);
    // Give the emulator time to notice anything a node did (it polls every 100 ms).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        changes(&c).is_empty(),
        "a plain scan changed something: {:?}",
        changes(&c)
    );
    let kernels: Vec<String> = (0..3).map(|i| c.kernel(&small_node(i))).collect();

    let refreshed = c.run(&["scan", "--refresh", "-o", "json"], true).await;
    refreshed.assert_code(0);
    // The emulator picks up what a node did within a moment (it polls the nodes).
    let deadline = Instant::now() + Duration::from_secs(5);
    while changes(&c).len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ch = changes(&c);
    assert_eq!(ch.len(), 3, "one apt-get update per node: {ch:?}");
    assert!(ch.iter().all(|e| e.starts_with("apt-update")), "{ch:?}");
    // Same pending updates, same kernels: only the package lists were refreshed.
    assert_eq!(
        plain.json().as_array().unwrap().len(),
        refreshed.json().as_array().unwrap().len()
    );
    for (row, k) in refreshed.json().as_array().unwrap().iter().zip(&kernels) {
        assert_eq!(row["pendingUpdates"], 2);
        assert_eq!(row["runningKernel"].as_str(), Some(k.as_str()));
    }
}

// ---------------------------------------------------------------------------------------
// Through a bastion: --ssh-jump and --ssh-config
// ---------------------------------------------------------------------------------------

/// An ssh_config for the jump leg only (`Host <bastion ip>`), as an operator's ~/.ssh/config
/// has it: with `-J`, ssh reaches the jump host with the config file, not with aks-patch's
/// `-i` and `-o` options, which are for the nodes.
fn bastion_ssh_config(c: &Cluster, dir: &std::path::Path, identity: &std::path::Path) -> std::path::PathBuf {
    let bastion = c.sim.endpoints().bastion.clone().expect("aks-sim serves a bastion");
    let ip = bastion
        .split_once('@')
        .and_then(|(_, host)| host.rsplit_once(':'))
        .expect("user@ip:port")
        .0
        .to_string();
    let config = dir.join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host {ip}\n    IdentityFile {}\n    IdentitiesOnly yes\n    UserKnownHostsFile {}\n    \
             StrictHostKeyChecking accept-new\n    BatchMode yes\n",
            identity.display(),
            dir.join("bastion_known_hosts").display()
        ),
    )
    .expect("write the ssh config");
    config
}

fn sessions_on(c: &Cluster, node: &str) -> usize {
    c.events()
        .iter()
        .filter(|e| e.kind == "ssh-session" && e.node.as_deref() == Some(node))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scan_through_a_jump_host_reaches_every_node_only_through_the_bastion() {
    skip_unless_root!();
    let c = Cluster::start(None).await;
    let bastion = c.sim.endpoints().bastion.clone().expect("aks-sim serves a bastion");
    let dir = tempfile::tempdir().expect("temp dir");
    let key = c.sim.state_dir().join("ssh/id_ed25519");
    let config = bastion_ssh_config(&c, dir.path(), &key);
    let config_arg = config.to_str().expect("utf-8 path");

    let r = c
        .run(
            &["scan", "--ssh-jump", &bastion, "--ssh-config", config_arg, "-o", "json"],
            true,
        )
        .await;
    r.assert_code(0);
    let rows = by_name(&r.json());
    for n in LINUX {
        assert_eq!(rows[n]["error"], Value::Null, "{n}: {}", rows[n]);
        assert_eq!(rows[n]["runningKernel"], kernel_before(n), "{n}");
        assert!(sessions_on(&c, n) >= 1, "{n} was scanned over SSH");
    }
    assert_eq!(rows[NEEDS_REBOOT]["rebootRequired"], true);
    assert!(r.stderr.contains(SUMMARY), "{}", r.stderr);
    // Every node's connection went through the bastion: one session there per node.
    assert!(
        sessions_on(&c, "bastion") >= LINUX.len(),
        "{} sessions on the bastion for {} nodes",
        sessions_on(&c, "bastion"),
        LINUX.len()
    );
    // The jump leg used --ssh-config (its known_hosts file has the bastion, and only it);
    // the nodes' keys went to aks-patch's own known_hosts, as without a jump host.
    let jump_known = std::fs::read_to_string(dir.path().join("bastion_known_hosts")).expect("written by the jump leg");
    assert_eq!(jump_known.lines().count(), 1, "{jump_known}");
    let ours = std::fs::read_to_string(c.state_dir().join("known_hosts")).expect("aks-patch's known_hosts");
    for n in LINUX {
        let ip = c.sim.shared.node(n).unwrap().ip.to_string();
        assert!(ours.lines().any(|l| l.starts_with(&format!("{ip} "))), "{n}: {ours}");
    }

    // Control: when the jump leg cannot log in to the bastion, no node is reached at all,
    // so the nodes above were reached through it, not directly.
    let node_sessions: Vec<usize> = LINUX.iter().map(|n| sessions_on(&c, n)).collect();
    let on_bastion = sessions_on(&c, "bastion");
    let bad_dir = dir.path().join("bad");
    std::fs::create_dir_all(&bad_dir).expect("mkdir");
    let bad = bastion_ssh_config(&c, &bad_dir, &dir.path().join("no-such-key"));
    let r = c
        .run(
            &[
                "scan",
                "--ssh-jump",
                &bastion,
                "--ssh-config",
                bad.to_str().unwrap(),
                "--ssh-timeout",
                "10",
                "-o",
                "json",
            ],
            true,
        )
        .await;
    r.assert_code(5);
    let rows = by_name(&r.json());
    for n in LINUX {
        let err = rows[n]["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{n} failed: {}", rows[n]));
        assert!(err.contains(n), "{err}");
        // ssh keeps nothing of what the jump leg said: the error says where to look.
        assert!(
            err.contains(&format!("through jump host {bastion}"))
                && err.contains("not --ssh-key")
                && err.contains(&format!("ssh -F {} -J {bastion} azureuser@", bad.display())),
            "{err}"
        );
    }
    assert!(sessions_on(&c, "bastion") > on_bastion, "the bastion was tried");
    let after: Vec<usize> = LINUX.iter().map(|n| sessions_on(&c, n)).collect();
    assert_eq!(after, node_sessions, "no node was reached around the bastion");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_ssh_jump_is_a_usage_error_before_any_ssh() {
    skip_unless_root!();
    let c = Cluster::start(None).await;
    for (jump, names) in [
        ("--ssh-jump=azureuser@:99999", "99999"),
        ("--ssh-jump=azureuser@bastion:ssh", "\"ssh\""),
        ("--ssh-jump=-oProxyCommand=touch /tmp/aks-patch-pwned", "-oProxyCommand"),
    ] {
        let r = c.run(&["scan", jump, "-o", "json"], true).await;
        r.assert_code(2);
        assert!(r.stderr.starts_with("error: "), "{jump}: {}", r.stderr);
        assert!(
            r.stderr.contains("--ssh-jump") && r.stderr.contains(names) && r.stderr.contains("user@host[:port]"),
            "{jump}: says what is wrong and what is expected: {}",
            r.stderr
        );
        assert_eq!(r.stdout, "", "{jump}");
    }
    assert!(!std::path::Path::new("/tmp/aks-patch-pwned").exists());
    assert_eq!(ssh_sessions(&c), 0, "no SSH session at all");
}

// ---------------------------------------------------------------------------------------
// Noise: API server blips and retries
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_server_blips_are_quiet_by_default_and_retries_say_what_and_why() {
    skip_unless_root!();
    let c = Cluster::start(None).await;
    let expected = c.run(&["report", "-o", "tsv", "--query", "[].name"], true).await;
    expected.assert_code(0);
    // Each run: the API server resets the first two connections.
    let blip = || c.sim.fault(aks_sim::Fault::KubeError { count: 2, status: 0 }).unwrap();

    // By default: the same answer, and nothing from kube-rs, hyper or rustls on stderr.
    blip();
    let quiet = c.run(&["report", "-o", "tsv", "--query", "[].name"], true).await;
    quiet.assert_code(0);
    assert_eq!(quiet.stdout, expected.stdout, "the blip changed nothing");
    assert_eq!(
        quiet.stderr, expected.stderr,
        "the blip printed nothing:\n{}",
        quiet.stderr
    );
    for noise in ["ERROR", "SendRequest", "failed with error", "retry"] {
        assert!(!quiet.stderr.contains(noise), "{noise}:\n{}", quiet.stderr);
    }
    assert_eq!(
        c.sim.status()["faults"]["kubeErrorLeft"],
        0,
        "both failures were served"
    );

    // --verbose: one line of ours per retry, saying what was retried and why; still no
    // library line.
    blip();
    let verbose = c
        .run(&["report", "-o", "tsv", "--query", "[].name", "--verbose"], true)
        .await;
    verbose.assert_code(0);
    assert_eq!(verbose.stdout, expected.stdout);
    let retries: Vec<&str> = verbose.stderr.lines().filter(|l| l.contains("retry")).collect();
    assert_eq!(retries.len(), 2, "one line per retry:\n{}", verbose.stderr);
    for (i, l) in retries.iter().enumerate() {
        assert!(l.contains("listing nodes failed ("), "what was retried: {l}");
        assert!(l.contains("connection") || l.contains("closed"), "why: {l}");
        assert!(
            l.contains(&format!("retry {} (retrying for up to 45s) in", i + 1)),
            "{l}"
        );
    }
    assert!(!verbose.stderr.contains("SendRequest"), "{}", verbose.stderr);
    assert!(!verbose.stderr.contains("kube_client"), "{}", verbose.stderr);

    // --debug: the libraries' own lines too, for whoever digs.
    blip();
    let debug = c
        .run(&["report", "-o", "tsv", "--query", "[].name", "--debug"], true)
        .await;
    debug.assert_code(0);
    assert!(debug.stderr.contains("kube_client"), "{}", debug.stderr);
    assert_eq!(
        debug
            .stderr
            .lines()
            .filter(|l| l.contains("listing nodes failed ("))
            .count(),
        2,
        "{}",
        debug.stderr
    );

    // ARM's retries read the same way: which request, what ARM answered, once per retry.
    let throttle = || {
        c.sim
            .fault(aks_sim::Fault::ArmThrottle {
                count: 1,
                retry_after: 1,
            })
            .unwrap()
    };
    throttle();
    let quiet = c.run(&["report", "-o", "tsv", "--query", "[].name"], true).await;
    quiet.assert_code(0);
    assert_eq!(quiet.stderr, expected.stderr, "{}", quiet.stderr);
    throttle();
    let verbose = c
        .run(&["report", "-o", "tsv", "--query", "[].name", "--verbose"], true)
        .await;
    verbose.assert_code(0);
    let retries: Vec<&str> = verbose.stderr.lines().filter(|l| l.contains("retry")).collect();
    assert_eq!(retries.len(), 1, "{}", verbose.stderr);
    assert!(
        retries[0].contains("ARM GET /subscriptions/") && retries[0].contains("answered 429"),
        "{}",
        retries[0]
    );
    assert!(retries[0].contains("retry 1 of"), "{}", retries[0]);
}
