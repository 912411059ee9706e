//! The machines behind the nodes, driven with the system `ssh` client as aks-patch drives
//! them: per-node chroots behind one sshd config, the apt/uname/sudo/reboot shims, faults
//! and the reboot lifecycle. Needs root, openssh-server and busybox-static (see README).

use crate::common::{stderr, stdout, Emulator};
use aks_sim::events::kinds;
use aks_sim::{model, Fault, Scenario};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

const SCENARIO: &str = r#"
cluster: {name: nodes-test, adminUsername: azureuser}
sshPort: 2222
timing:
  shutdownSeconds: 0.3
  bootSeconds: 1.5
  readySeconds: 0.3
  aptSeconds: 0.1
  aptUpdateSeconds: 0.05
  # Kubelet leases on a fast clock, so that a reboot shows Unknown before the boot.
  leaseRenewSeconds: 0.2
  nodeMonitorGraceSeconds: 0.5
  nodeStatusSeconds: 1
pools:
  - name: sys
    mode: System
    count: 2
    vmssId: "11111111"
    kernel: 5.15.0-1068-azure
    updates:
      - {name: linux-azure, from: 5.15.0.1068.66, to: 5.15.0.1073.71, pocket: jammy-security, kernel: 5.15.0-1073-azure}
      - {name: openssl, from: 3.0.2-0ubuntu1.18, to: 3.0.2-0ubuntu1.19, pocket: jammy-security}
      - {name: libc6, from: 2.35-0ubuntu3.8, to: 2.35-0ubuntu3.9, pocket: jammy-security, rebootRequired: true}
      - {name: curl, from: 7.81.0-1ubuntu1.18, to: 7.81.0-1ubuntu1.20, pocket: jammy-updates}
  - name: user
    count: 2
    vmssId: "22222222"
    kernel: 5.15.0-1070-azure
  - name: azl
    count: 1
    osSKU: AzureLinux
    vmssId: "33333333"
    kernel: 6.6.64.2-9.azl3
  - name: win
    osType: Windows
    count: 1
nodes:
  aks-user-22222222-vmss000001:
    rebootRequired: [linux-image-5.15.0-1073-azure, libc6]
"#;

const SYS0: &str = "aks-sys-11111111-vmss000000";
const SYS1: &str = "aks-sys-11111111-vmss000001";
const USER0: &str = "aks-user-22222222-vmss000000";
const USER1: &str = "aks-user-22222222-vmss000001";
const AZL0: &str = "aks-azl-33333333-vmss000000";
const WIN0: &str = "akswin000000";

/// The emulator, driven over SSH as aks-patch drives its nodes.
struct Harness {
    emu: Emulator,
}

impl std::ops::Deref for Harness {
    type Target = Emulator;
    fn deref(&self) -> &Emulator {
        &self.emu
    }
}

async fn start(yaml: &str) -> Harness {
    Harness {
        emu: Emulator::start_yaml(yaml, "nodes.rs").await,
    }
}

async fn start_with(scenario: Scenario) -> Harness {
    Harness {
        emu: Emulator::start(scenario).await,
    }
}

impl Harness {
    fn ip(&self, node: &str) -> String {
        self.sim.shared.node(node).expect("node exists").ip.to_string()
    }

    fn key(&self) -> PathBuf {
        self.sim.state_dir().join("ssh/id_ed25519")
    }

    fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// Run a command that must succeed; its stdout.
    async fn ssh_ok(&self, node: &str, command: &str) -> String {
        let out = self.ssh(node, command).await;
        assert!(
            out.status.success(),
            "ssh {node} `{command}` failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// An SSH session running `sleep 60`, once it runs.
    async fn held_session(&self, node: &str) -> tokio::process::Child {
        let mut held = self
            .ssh_command(node, "echo started; sleep 60")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("ssh runs");
        let mut first = String::new();
        let mut reader = tokio::io::BufReader::new(held.stdout.take().expect("piped stdout"));
        tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut first))
            .await
            .expect("the held session starts")
            .expect("read");
        assert_eq!(first, "started\n");
        held
    }

    fn ready(&self, node: &str) -> String {
        model::ready_status(&self.node(node)).to_string()
    }

    fn machine(&self, node: &str) -> serde_json::Value {
        self.sim
            .shared
            .node_runtime
            .get()
            .expect("node runtime")
            .machine_status(&self.sim.shared, node)
    }

    fn events_for(&self, node: &str) -> Vec<aks_sim::SimEvent> {
        self.sim
            .events()
            .into_iter()
            .filter(|e| e.node.as_deref() == Some(node))
            .collect()
    }

    /// Shut down and prove nothing is left behind.
    async fn finish(self) {
        self.emu.shutdown_leaves_nothing().await;
    }
}

async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ssh_serves_each_node_its_own_root() {
    skip_unless_root!();
    let h = start(SCENARIO).await;

    // Every node answers with its own kernel, through one sshd config.
    let t = Instant::now();
    assert_eq!(h.ssh_ok(SYS0, "uname -r").await, "5.15.0-1068-azure\n");
    println!(
        "first ssh round trip (connect, sshd -i, key auth, command): {:?}",
        t.elapsed()
    );
    let t = Instant::now();
    assert_eq!(h.ssh_ok(SYS0, "true").await, "");
    println!("second ssh round trip: {:?}", t.elapsed());
    assert_eq!(h.ssh_ok(USER0, "uname -r").await, "5.15.0-1070-azure\n");
    assert_eq!(h.ssh_ok(USER1, "/bin/uname -r").await, "5.15.0-1070-azure\n");
    assert_eq!(
        h.ssh_ok(SYS1, "uname -a").await,
        format!("Linux {SYS1} 5.15.0-1068-azure {} x86_64 x86_64 x86_64 GNU/Linux\n", {
            let v = h.ssh_ok(SYS1, "cat /proc/sys/kernel/version").await;
            v.trim().to_string()
        })
    );
    assert_eq!(h.ssh_ok(SYS1, "hostname").await, format!("{SYS1}\n"));
    assert_eq!(h.ssh_ok(SYS1, "id -un").await, "azureuser\n");
    let os = h
        .ssh_ok(SYS0, ". /etc/os-release; echo $ID $VERSION_CODENAME; lsb_release -cs")
        .await;
    assert_eq!(os, "ubuntu jammy\njammy\n");
    // Azure Linux has no apt.
    assert_eq!(
        h.ssh_ok(
            AZL0,
            ". /etc/os-release; echo $ID; uname -r; command -v apt-get || echo no apt"
        )
        .await,
        "azurelinux\n6.6.64.2-9.azl3\nno apt\n"
    );

    // The bootID inside is the Node's, and so is the address.
    assert_eq!(
        h.ssh_ok(USER0, "cat /proc/sys/kernel/random/boot_id").await.trim(),
        h.boot_id(USER0)
    );
    assert_eq!(h.ssh_ok(USER0, "hostname -I").await.trim(), h.ip(USER0));
    let up = h.ssh_ok(USER0, "uptime -s; uptime -p").await;
    assert!(up.contains("up 6 weeks") || up.contains("up 42 days"), "{up}");

    // /var/run/reboot-required is per node.
    let marker =
        "test -f /var/run/reboot-required && cat /var/run/reboot-required /var/run/reboot-required.pkgs || echo none";
    assert_eq!(h.ssh_ok(USER0, marker).await, "none\n");
    assert_eq!(
        h.ssh_ok(USER1, marker).await,
        "*** System restart required ***\nlinux-image-5.15.0-1073-azure\nlibc6\n"
    );
    let m = h.machine(USER1);
    assert_eq!(m["rebootRequired"], true);
    assert_eq!(m["runningKernel"], "5.15.0-1070-azure");
    assert_eq!(
        m["installedKernels"],
        serde_json::json!(["5.15.0-1070-azure", "5.15.0-1073-azure"])
    );

    // A file written on one node is not on the other.
    h.ssh_ok(SYS0, "echo mine > /tmp/where").await;
    assert_eq!(h.ssh_ok(SYS0, "cat /tmp/where").await, "mine\n");
    assert!(!h.ssh(SYS1, "cat /tmp/where").await.status.success());

    // sshd logged key logins for every node through the same config.
    let log = std::fs::read_to_string(h.sim.state_dir().join("ssh/sshd.log")).expect("sshd log");
    let accepted = log.matches("Accepted publickey for azureuser").count();
    assert!(accepted >= 4, "{accepted} key logins in the sshd log:\n{log}");
    let config = std::fs::read_to_string(h.sim.state_dir().join("ssh/sshd_config")).expect("config");
    // One block per Linux node with SSH, and the bastion's (sim/tests/bastion.rs).
    assert_eq!(config.matches("Match LocalAddress").count(), 5 + 1, "{config}");
    assert!(h.events_for(SYS0).iter().any(|e| e.kind == kinds::SSH_SESSION));

    // A Windows node exists but refuses SSH.
    assert!(h.sim.shared.node(WIN0).is_some());
    let out = h.ssh(WIN0, "true").await;
    assert_eq!(out.status.code(), Some(255));
    assert!(stderr(&out).contains("Connection refused"), "{}", stderr(&out));
    assert_eq!(h.machine(WIN0)["sshUp"], false);

    // sudo runs the command with the environment given.
    assert_eq!(
        h.ssh_ok(
            SYS0,
            "sudo -n DEBIAN_FRONTEND=noninteractive sh -c 'echo $DEBIAN_FRONTEND $SUDO_USER'"
        )
        .await,
        "noninteractive azureuser\n"
    );
    let out = h.ssh(SYS0, "sudo no-such-command").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("sudo: no-such-command: command not found"));
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apt_reports_and_upgrades_like_ubuntu() {
    skip_unless_root!();
    let h = start(SCENARIO).await;

    let out = h.ssh(SYS0, "apt list --upgradable").await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "Listing...\n\
         curl/jammy-updates 7.81.0-1ubuntu1.20 amd64 [upgradable from: 7.81.0-1ubuntu1.18]\n\
         libc6/jammy-updates,jammy-security 2.35-0ubuntu3.9 amd64 [upgradable from: 2.35-0ubuntu3.8]\n\
         linux-azure/jammy-updates,jammy-security 5.15.0.1073.71 amd64 [upgradable from: 5.15.0.1068.66]\n\
         openssl/jammy-updates,jammy-security 3.0.2-0ubuntu1.19 amd64 [upgradable from: 3.0.2-0ubuntu1.18]\n"
    );
    assert_eq!(
        stderr(&out),
        "\nWARNING: apt does not have a stable CLI interface. Use with caution in scripts.\n\n"
    );

    // Simulation: no root needed, the NOTE header, kernel kept back.
    let sec = "Ubuntu:22.04/jammy-updates, Ubuntu:22.04/jammy-security [amd64]";
    let out = h.ssh_ok(SYS0, "apt-get -s upgrade").await;
    assert_eq!(
        out,
        format!(
            "NOTE: This is only a simulation!\n      apt-get needs root privileges for real execution.\n      \
             Keep also in mind that locking is deactivated,\n      so don't depend on the relevance to the real current situation!\n\
             Reading package lists...\nBuilding dependency tree...\nReading state information...\nCalculating upgrade...\n\
             The following packages have been kept back:\n  linux-azure\n\
             The following packages will be upgraded:\n  curl libc6 openssl\n\
             3 upgraded, 0 newly installed, 0 to remove and 1 not upgraded.\n\
             Inst openssl [3.0.2-0ubuntu1.18] (3.0.2-0ubuntu1.19 {sec})\n\
             Inst libc6 [2.35-0ubuntu3.8] (2.35-0ubuntu3.9 {sec})\n\
             Inst curl [7.81.0-1ubuntu1.18] (7.81.0-1ubuntu1.20 Ubuntu:22.04/jammy-updates [amd64])\n\
             Conf openssl (3.0.2-0ubuntu1.19 {sec})\n\
             Conf libc6 (2.35-0ubuntu3.9 {sec})\n\
             Conf curl (7.81.0-1ubuntu1.20 Ubuntu:22.04/jammy-updates [amd64])\n"
        )
    );
    let out = h.ssh_ok(SYS0, "sudo apt-get --simulate dist-upgrade").await;
    assert!(!out.contains("NOTE: This is only a simulation!"), "{out}");
    assert!(
        out.contains(
            "The following NEW packages will be installed:\n  linux-image-5.15.0-1073-azure linux-modules-5.15.0-1073-azure\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("4 upgraded, 2 newly installed, 0 to remove and 0 not upgraded.\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!("Inst linux-image-5.15.0-1073-azure (5.15.0-1073.71 {sec})\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!("Inst linux-azure [5.15.0.1068.66] (5.15.0.1073.71 {sec})\n")),
        "{out}"
    );

    // Without root, apt-get refuses to change anything; without -y it asks and aborts.
    let out = h.ssh(SYS0, "apt-get upgrade -y").await;
    assert_eq!(out.status.code(), Some(100));
    assert!(stderr(&out).contains("are you root?"), "{}", stderr(&out));
    let out = h.ssh(SYS0, "sudo apt-get upgrade").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).ends_with("Do you want to continue? [Y/n] Abort.\n"),
        "{}",
        stdout(&out)
    );

    h.ssh_ok(SYS0, "sudo apt-get update").await;
    let update = h.ssh_ok(SYS0, "sudo apt-get update").await;
    assert!(
        update.starts_with("Hit:1 http://azure.archive.ubuntu.com/ubuntu jammy InRelease\n"),
        "{update}"
    );
    assert!(update.ends_with("Reading package lists...\n"), "{update}");

    // Plain upgrade keeps the new kernel ABI back; libc6 asks for a reboot.
    let out = h
        .ssh_ok(
            SYS0,
            "sudo DEBIAN_FRONTEND=noninteractive apt-get -o Dpkg::Options::=--force-confold -q upgrade -y",
        )
        .await;
    assert!(
        out.contains("The following packages have been kept back:\n  linux-azure\n"),
        "{out}"
    );
    assert!(
        out.contains("Unpacking openssl (3.0.2-0ubuntu1.19) over (3.0.2-0ubuntu1.18) ...\n"),
        "{out}"
    );
    assert!(out.contains("Setting up libc6:amd64 (2.35-0ubuntu3.9) ...\n"), "{out}");
    assert_eq!(
        h.ssh_ok(SYS0, "cat /var/run/reboot-required.pkgs; apt list --upgradable 2>/dev/null").await,
        "libc6\nListing...\nlinux-azure/jammy-updates,jammy-security 5.15.0.1073.71 amd64 [upgradable from: 5.15.0.1068.66]\n"
    );
    assert_eq!(h.ssh_ok(SYS0, "ls /boot").await, "vmlinuz-5.15.0-1068-azure\n");

    // --with-new-pkgs installs it and names it in the marker.
    let out = h.ssh_ok(SYS0, "sudo apt-get upgrade --with-new-pkgs -y").await;
    assert!(
        out.contains("Setting up linux-image-5.15.0-1073-azure (5.15.0-1073.71) ...\n"),
        "{out}"
    );
    assert!(
        out.contains("1 upgraded, 2 newly installed, 0 to remove and 0 not upgraded.\n"),
        "{out}"
    );
    assert_eq!(
        h.ssh_ok(
            SYS0,
            "cat /var/run/reboot-required /var/run/reboot-required.pkgs; ls /boot"
        )
        .await,
        "*** System restart required ***\nlibc6\nlinux-image-5.15.0-1073-azure\n\
         vmlinuz-5.15.0-1068-azure\nvmlinuz-5.15.0-1073-azure\n"
    );
    assert_eq!(
        h.ssh_ok(SYS0, "apt list --upgradable 2>/dev/null").await,
        "Listing...\n"
    );
    // Still the old kernel until the reboot.
    assert_eq!(h.ssh_ok(SYS0, "uname -r").await, "5.15.0-1068-azure\n");
    let m = h.machine(SYS0);
    assert_eq!(m["pendingUpdates"], serde_json::json!([]));
    assert_eq!(
        m["rebootPackages"],
        serde_json::json!(["libc6", "linux-image-5.15.0-1073-azure"])
    );

    // The other node of the pool is untouched; `install --only-upgrade` pulls the kernel in.
    let out = h
        .ssh_ok(SYS1, "sudo apt-get install --only-upgrade -y linux-azure openssl bash")
        .await;
    assert!(
        out.contains("Skipping bash, it is not installed and only upgrades are requested.\n"),
        "{out}"
    );
    assert!(
        out.contains("2 upgraded, 2 newly installed, 0 to remove and 2 not upgraded.\n"),
        "{out}"
    );
    assert_eq!(
        h.ssh_ok(SYS1, "cat /var/run/reboot-required.pkgs").await,
        "linux-image-5.15.0-1073-azure\n"
    );
    let out = h.ssh_ok(SYS1, "sudo apt-get install -y openssl").await;
    assert!(
        out.contains("openssl is already the newest version (3.0.2-0ubuntu1.19).\n"),
        "{out}"
    );
    let out = h.ssh(SYS1, "sudo apt-get install -y no-such-package").await;
    assert_eq!(out.status.code(), Some(100));
    assert!(stderr(&out).contains("E: Unable to locate package no-such-package"));
    // dist-upgrade takes the rest.
    let out = h.ssh_ok(SYS1, "sudo apt-get dist-upgrade -y").await;
    assert!(
        out.contains("2 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n"),
        "{out}"
    );

    let count = |kind: &str| h.events_for(SYS0).iter().filter(|e| e.kind == kind).count();
    wait_for("the apt events", Duration::from_secs(2), || {
        count(kinds::APT_UPDATE) == 2 && count(kinds::APT_UPGRADE) == 2
    })
    .await;
    let upgrade = h
        .events_for(SYS0)
        .into_iter()
        .rfind(|e| e.kind == kinds::APT_UPGRADE)
        .expect("event");
    assert_eq!(
        upgrade.detail,
        "apt-get upgrade: linux-modules-5.15.0-1073-azure linux-image-5.15.0-1073-azure linux-azure"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dpkg_lock_and_apt_failure_faults() {
    skip_unless_root!();
    let h = start(SCENARIO).await;
    // unattended-upgrades holds the lock until the test lets it go.
    h.sim
        .fault(Fault::DpkgLock {
            node: SYS0.into(),
            seconds: 3600.0,
        })
        .expect("fault applies");
    let out = h.ssh(SYS0, "sudo apt-get upgrade -y").await;
    assert_eq!(out.status.code(), Some(100), "{}", stdout(&out));
    assert_eq!(
        stderr(&out),
        "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 2345 (unattended-upgr)\n\
         N: Be aware that removing the lock file is not a solution and may break your system.\n\
         E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?\n"
    );
    // Read-only commands do not take the lock.
    h.ssh_ok(SYS0, "apt-get -s upgrade").await;
    // Another node is not locked.
    h.ssh_ok(SYS1, "sudo apt-get upgrade -y").await;

    // With a lock timeout apt waits, saying so every second, and upgrades once the lock is
    // free.
    let mut waiting = h
        .ssh_command(SYS0, "sudo apt-get -o DPkg::Lock::Timeout=60 upgrade -y")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("ssh runs");
    let mut out = tokio::io::BufReader::new(waiting.stdout.take().expect("piped stdout"));
    let mut first = String::new();
    tokio::time::timeout(Duration::from_secs(30), out.read_line(&mut first))
        .await
        .expect("apt says it waits")
        .expect("read");
    assert_eq!(
        first,
        "Waiting for cache lock: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 2345 (unattended-upgr)... 1s\n"
    );
    h.sim
        .fault(Fault::DpkgLock {
            node: SYS0.into(),
            seconds: 0.0,
        })
        .expect("fault applies");
    let mut rest = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut out, &mut rest)
        .await
        .expect("read");
    let status = tokio::time::timeout(Duration::from_secs(60), waiting.wait())
        .await
        .expect("apt ends once the lock is free")
        .expect("ssh runs");
    assert!(status.success(), "{first}{rest}");
    assert!(rest.contains("3 upgraded, 0 newly installed"), "{rest}");

    h.sim
        .fault(Fault::AptFailure { node: SYS0.into() })
        .expect("fault applies");
    let out = h.ssh(SYS0, "sudo apt-get dist-upgrade -y").await;
    assert_eq!(out.status.code(), Some(100));
    assert!(stdout(&out).contains("Err:1 http://azure.archive.ubuntu.com/ubuntu jammy-updates/main amd64 linux-azure"));
    assert_eq!(
        stderr(&out),
        "E: Failed to fetch http://azure.archive.ubuntu.com/ubuntu/pool/main/l/linux-azure/linux-azure_5.15.0.1073.71_amd64.deb  503  Service Unavailable [IP: 52.252.163.49 80]\n\
         E: Unable to fetch some archives, maybe run apt-get update or try with --fix-missing?\n"
    );
    // Nothing was installed.
    assert_eq!(h.ssh_ok(SYS0, "ls /boot").await, "vmlinuz-5.15.0-1068-azure\n");
    wait_for("the apt-failed and lock events", Duration::from_secs(2), || {
        h.events_for(SYS0)
            .iter()
            .filter(|e| e.kind == kinds::APT_FAILED)
            .count()
            == 2
    })
    .await;
    h.sim.fault(Fault::Clear).expect("clear applies");
    h.ssh_ok(SYS0, "sudo apt-get dist-upgrade -y").await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reboot_brings_the_new_kernel_and_a_new_boot_id() {
    skip_unless_root!();
    let h = start(SCENARIO).await;
    h.ssh_ok(SYS0, "sudo apt-get dist-upgrade -y").await;
    let old_boot = h.boot_id(SYS0);
    assert_eq!(h.ready(SYS0), "True");

    // A session that is open when the node goes down is dropped.
    let mut held = h.held_session(SYS0).await;
    assert!(h.machine(SYS0)["sessions"].as_u64() >= Some(1));

    // The command returns at once: had its session waited for the reboot, the reboot would
    // have dropped it (as it drops `held`) and ssh would have failed.
    h.ssh_ok(SYS0, "nohup sh -c 'sleep 1; sudo reboot' >/dev/null 2>&1 &")
        .await;

    let status = tokio::time::timeout(Duration::from_secs(10), held.wait())
        .await
        .expect("the held session is dropped by the reboot")
        .expect("ssh waited");
    assert_eq!(status.code(), Some(255));

    wait_for("Node Unknown", Duration::from_secs(5), || h.ready(SYS0) == "Unknown").await;
    let out = h.ssh(SYS0, "true").await;
    assert_eq!(out.status.code(), Some(255), "SSH refuses while the node is down");
    assert!(stderr(&out).contains("Connection refused"), "{}", stderr(&out));
    assert_eq!(h.machine(SYS0)["phase"], "down");

    wait_for("Node Ready again", Duration::from_secs(10), || h.ready(SYS0) == "True").await;
    let node = h.node(SYS0);
    assert_ne!(h.boot_id(SYS0), old_boot);
    assert_eq!(node["status"]["nodeInfo"]["kernelVersion"], "5.15.0-1073-azure");
    assert_eq!(h.ssh_ok(SYS0, "uname -r").await, "5.15.0-1073-azure\n");
    assert_eq!(
        h.ssh_ok(SYS0, "cat /proc/sys/kernel/random/boot_id").await.trim(),
        h.boot_id(SYS0)
    );
    assert_eq!(
        h.ssh_ok(SYS0, "test -e /var/run/reboot-required && echo marker || echo clean")
            .await,
        "clean\n"
    );
    let up = h.ssh_ok(SYS0, "uptime -p").await;
    assert_eq!(up, "up 0 minutes\n");

    // The event log: reboot, ssh-down, (Unknown), node-booted, ssh-up, Ready, in that order.
    let evs = h.events_for(SYS0);
    let order: Vec<&str> = evs
        .iter()
        .map(|e| e.kind.as_str())
        .filter(|k| {
            [
                kinds::REBOOT,
                kinds::SSH_DOWN,
                kinds::NODE_BOOTED,
                kinds::SSH_UP,
                kinds::NODE_READY,
            ]
            .contains(k)
        })
        .collect();
    assert_eq!(
        order,
        [
            kinds::REBOOT,
            kinds::SSH_DOWN,
            kinds::NODE_BOOTED,
            kinds::SSH_UP,
            kinds::NODE_READY
        ],
        "{evs:#?}"
    );
    let pos = |pred: &dyn Fn(&aks_sim::SimEvent) -> bool| evs.iter().position(pred).expect("event recorded");
    let unknown = pos(&|e| e.kind == kinds::NODE_NOT_READY && e.detail == "Ready=Unknown");
    assert!(pos(&|e| e.kind == kinds::SSH_DOWN) < unknown, "{evs:#?}");
    assert!(unknown < pos(&|e| e.kind == kinds::NODE_BOOTED), "{evs:#?}");
    let reboot = evs.iter().find(|e| e.kind == kinds::REBOOT).expect("reboot event");
    assert!(reboot.detail.contains(&old_boot), "{}", reboot.detail);
    let booted = evs.iter().find(|e| e.kind == kinds::NODE_BOOTED).expect("booted event");
    assert!(booted.detail.contains("kernel=5.15.0-1073-azure"), "{}", booted.detail);
    // The other nodes did not reboot.
    assert!(h.events_for(SYS1).iter().all(|e| e.kind != kinds::REBOOT));

    // Without sudo, reboot is refused as on Ubuntu.
    let out = h.ssh(SYS1, "reboot").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Interactive authentication required"),
        "{}",
        stderr(&out)
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ssh_down_up_and_a_node_that_never_returns() {
    skip_unless_root!();
    let h = start(SCENARIO).await;
    // A background job survives SSH going down; an open session does not.
    h.ssh_ok(
        USER0,
        "nohup sh -c 'sleep 2; echo survived > /tmp/bg' >/dev/null 2>&1 &",
    )
    .await;
    let mut held = h.held_session(USER0).await;
    h.sim.fault(Fault::SshDown { node: USER0.into() }).expect("fault");
    let status = tokio::time::timeout(Duration::from_secs(10), held.wait())
        .await
        .expect("the open session is dropped")
        .expect("ssh waited");
    assert_eq!(status.code(), Some(255));
    let out = h.ssh(USER0, "true").await;
    assert_eq!(out.status.code(), Some(255));
    assert!(stderr(&out).contains("Connection refused"), "{}", stderr(&out));
    assert_eq!(h.machine(USER0)["sshUp"], false);
    // The node itself is fine, and the other nodes answer.
    assert_eq!(h.ready(USER0), "True");
    h.ssh_ok(USER1, "true").await;
    h.sim.fault(Fault::SshUp { node: USER0.into() }).expect("fault");
    assert_eq!(h.ssh_ok(USER0, "echo back").await, "back\n");
    wait_for("the background job", Duration::from_secs(5), || {
        std::fs::read_to_string(
            h.sim
                .shared
                .node_runtime
                .get()
                .unwrap()
                .node_root(USER0)
                .unwrap()
                .join("tmp/bg"),
        )
        .is_ok_and(|s| s == "survived\n")
    })
    .await;
    let kinds_seen: Vec<String> = h
        .events_for(USER0)
        .into_iter()
        .map(|e| e.kind)
        .filter(|k| k == kinds::SSH_DOWN || k == kinds::SSH_UP)
        .collect();
    assert_eq!(kinds_seen, [kinds::SSH_DOWN, kinds::SSH_UP]);

    // A node that never comes back after `systemctl reboot`.
    h.sim
        .fault(Fault::NodeNeverReturns { node: USER1.into() })
        .expect("fault");
    assert_eq!(h.ssh_ok(USER1, "systemctl is-system-running").await, "running\n");
    let out = h.ssh(USER1, "sudo systemctl reboot").await;
    assert_eq!(out.status.code(), Some(255), "the session is dropped");
    wait_for("Node Unknown", Duration::from_secs(5), || h.ready(USER1) == "Unknown").await;
    tokio::time::sleep(Duration::from_secs(3)).await; // twice bootSeconds
    assert_eq!(h.ready(USER1), "Unknown");
    assert_eq!(h.machine(USER1)["phase"], "down");
    assert_eq!(h.ssh(USER1, "true").await.status.code(), Some(255));
    assert!(h.events_for(USER1).iter().all(|e| e.kind != kinds::NODE_BOOTED));

    // Clearing the faults repairs it: it boots, with the kernel it had installed.
    h.sim.fault(Fault::Clear).expect("fault");
    wait_for("Node Ready", Duration::from_secs(10), || h.ready(USER1) == "True").await;
    assert_eq!(h.ssh_ok(USER1, "uname -r").await, "5.15.0-1073-azure\n");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_nodes_through_one_sshd() {
    skip_unless_root!();
    let scenario = Scenario::default_scenario().with_linux_nodes(200).expect("scales");
    let t = Instant::now();
    let h = start_with(scenario).await;
    let startup = t.elapsed();
    println!("aks-sim with 200 Linux nodes started in {startup:?}");
    let linux: Vec<String> = h
        .sim
        .shared
        .nodes
        .iter()
        .filter(|n| n.is_linux())
        .map(|n| n.name.clone())
        .collect();
    assert_eq!(linux.len(), 200);
    let first = &linux[0];
    let last = &linux[199];
    let t = Instant::now();
    assert_eq!(h.ssh_ok(first, "hostname").await, format!("{first}\n"));
    assert_eq!(h.ssh_ok(last, "hostname").await, format!("{last}\n"));
    println!("two ssh round trips at 200 nodes: {:?}", t.elapsed());
    let config = std::fs::read_to_string(h.sim.state_dir().join("ssh/sshd_config")).expect("config");
    assert_eq!(
        config.matches("Match LocalAddress").count(),
        200 + 1,
        "and the bastion's"
    );
    // The bastion serves at this size too (its PermitOpen lists all 200 addresses), and
    // reaches the last node: the jump leg as a ProxyCommand, so that it gets the key too.
    let bastion = h.sim.endpoints().bastion.clone().expect("a bastion");
    let (login, port) = bastion.rsplit_once(':').expect("user@ip:port");
    let proxy = format!(
        "ProxyCommand=ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile={} \
         -o StrictHostKeyChecking=accept-new -o LogLevel=ERROR -p {port} -W [%h]:%p {login}",
        h.key().display(),
        h.known_hosts().display(),
    );
    let mut ssh = tokio::process::Command::new("ssh");
    ssh.args(["-F", "/dev/null", "-o", &proxy, "-i"])
        .arg(h.key())
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", h.known_hosts().display()))
        .args([
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .arg("-p")
        .arg(h.sim.endpoints().ssh_port.to_string())
        .arg(format!("azureuser@{}", h.ip(last)))
        .arg("hostname")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), ssh.output())
        .await
        .expect("ssh through the bastion finishes in 60s")
        .expect("ssh runs");
    assert!(out.status.success(), "ssh through the bastion: {}", stderr(&out));
    assert_eq!(stdout(&out), format!("{last}\n"));
    assert!(h
        .sim
        .events()
        .iter()
        .any(|e| e.kind == kinds::SSH_SESSION && e.node.as_deref() == Some("bastion")));
    h.finish().await;
}

const AZL_SCENARIO: &str = r#"
resourceGroup: rg-azl
cluster: {name: aks-azl}
timing: {shutdownSeconds: 0.2, bootSeconds: 1, readySeconds: 0.3, aptSeconds: 0.1, aptUpdateSeconds: 0.1}
pools:
  - name: sys
    count: 1
    vmssId: "11111111"
  - name: azl
    count: 1
    osSKU: AzureLinux
    vmssId: "33333333"
    updates:
      - {name: kernel, from: 6.6.64.2-9.azl3, to: 6.6.78.1-1.azl3, pocket: azurelinux-official-base, kernel: 6.6.78.1-1.azl3}
      - {name: glibc, from: 2.38-8.azl3, to: 2.38-9.azl3, pocket: azurelinux-official-base, rebootRequired: true}
      - {name: curl, from: 8.8.0-4.azl3, to: 8.11.1-2.azl3, pocket: azurelinux-official-base}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tdnf_and_needs_restarting_like_azure_linux_3() {
    skip_unless_root!();
    let h = start(AZL_SCENARIO).await;
    let (sys, azl) = ("aks-sys-11111111-vmss000000", "aks-azl-33333333-vmss000000");
    // Each OS has its own package manager only.
    assert_eq!(
        h.ssh_ok(sys, "command -v tdnf needs-restarting || echo none").await,
        "none\n"
    );
    assert_eq!(
        h.ssh_ok(
            azl,
            ". /etc/os-release; echo $ID $VERSION_ID; uname -r; command -v apt-get || echo no apt"
        )
        .await,
        "azurelinux 3.0\n6.6.64.2-9.azl3\nno apt\n"
    );
    assert_eq!(
        h.node(azl)["status"]["nodeInfo"]["osImage"],
        "Microsoft Azure Linux 3.0"
    );

    // tdnf refuses non-root users; check-update lists name.arch, version-release,
    // repository, and exits 0 with updates pending.
    let out = h.ssh(azl, "tdnf -q check-update").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("You have to be root"), "{}", stderr(&out));
    let out = h.ssh_ok(azl, "sudo tdnf -q -C check-update").await;
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        lines,
        vec![
            vec!["curl.x86_64", "8.11.1-2.azl3", "azurelinux-official-base"],
            vec!["glibc.x86_64", "2.38-9.azl3", "azurelinux-official-base"],
            vec!["kernel.x86_64", "6.6.78.1-1.azl3", "azurelinux-official-base"],
        ]
    );
    let json: serde_json::Value =
        serde_json::from_str(&h.ssh_ok(azl, "sudo tdnf -q --json check-update").await).unwrap();
    assert_eq!(json[2]["Name"], "kernel");
    assert_eq!(json[2]["Evr"], "6.6.78.1-1.azl3");
    let nr = h.ssh(azl, "needs-restarting -r").await;
    assert_eq!(nr.status.code(), Some(0));
    assert!(
        stdout(&nr).contains("Reboot should not be necessary"),
        "{}",
        stdout(&nr)
    );
    // rpm knows the installed versions.
    assert_eq!(
        h.ssh_ok(azl, "rpm -q --qf '%{NAME} %{VERSION}-%{RELEASE}\\n' kernel curl")
            .await,
        "kernel 6.6.64.2-9.azl3\ncurl 8.8.0-4.azl3\n"
    );
    let out = h.ssh(azl, "rpm -q nano").await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "package nano is not installed\n");

    // Installing needs root; dnf-automatic holding rpm's lock makes it fail; systemd says so.
    let out = h.ssh(azl, "tdnf -y update").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("You have to be root"), "{}", stderr(&out));
    h.sim
        .fault(Fault::DpkgLock {
            node: azl.into(),
            seconds: 30.0,
        })
        .unwrap();
    assert_eq!(
        h.ssh_ok(
            azl,
            "systemctl show -p ActiveState --value dnf-automatic-install.service"
        )
        .await,
        "activating\n"
    );
    let out = h.ssh(azl, "sudo tdnf -y update --refresh").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/var/lib/rpm/.rpm.lock"), "{}", stderr(&out));
    h.sim.fault(Fault::Clear).unwrap();
    assert_eq!(
        h.ssh_ok(
            azl,
            "systemctl show -p ActiveState --value dnf-automatic-install.service"
        )
        .await,
        "inactive\n"
    );

    // The update installs the new kernel and glibc; no marker (that is the daily timer's),
    // but needs-restarting -r says a reboot is required, and why.
    let out = h.ssh_ok(azl, "sudo tdnf -y update --refresh").await;
    assert!(out.contains("Upgrading:") && out.ends_with("Complete!\n"), "{out}");
    assert_eq!(h.ssh_ok(azl, "sudo tdnf -q check-update").await, "");
    assert_eq!(h.machine(azl)["rebootRequired"], false);
    let nr = h.ssh(azl, "needs-restarting -r").await;
    assert_eq!(nr.status.code(), Some(1));
    assert!(
        stdout(&nr).contains("  * kernel\n  * glibc\n") && stdout(&nr).contains("Reboot is required"),
        "{}",
        stdout(&nr)
    );
    let ev = h.events_for(azl);
    assert!(ev
        .iter()
        .any(|e| e.kind == kinds::APT_UPGRADE && e.detail == "tdnf update: curl glibc kernel"));
    assert!(ev
        .iter()
        .any(|e| e.kind == kinds::APT_FAILED && e.detail.contains("rpm transaction lock")));

    // After the reboot: the new kernel, and nothing needs restarting.
    let old_boot = h.boot_id(azl);
    h.ssh_ok(azl, "nohup sh -c 'sleep 0.5; sudo reboot' >/dev/null 2>&1 &")
        .await;
    wait_for("a new bootID", Duration::from_secs(10), || h.boot_id(azl) != old_boot).await;
    wait_for("Node Ready again", Duration::from_secs(10), || h.ready(azl) == "True").await;
    assert_eq!(h.ssh_ok(azl, "uname -r").await, "6.6.78.1-1.azl3\n");
    let nr = h.ssh(azl, "needs-restarting -r").await;
    assert_eq!(nr.status.code(), Some(0), "{}", stdout(&nr));
    h.finish().await;
}
