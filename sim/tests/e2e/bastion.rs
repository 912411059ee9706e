//! The bastion (jump host) aks-sim serves on `<prefix>.254`, driven with the system `ssh` as an
//! operator drives it: `ssh -J` to every node, forwarding only to the nodes' SSH port, never
//! from a node, and gone without a trace at shutdown. Needs root, openssh-server and
//! busybox-static (see README).

use crate::common::{stderr, stdout, Emulator};
use aks_sim::events::kinds;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

const SCENARIO: &str = r#"
cluster: {name: bastion-test, adminUsername: azureuser}
sshPort: 2222
pools:
  - name: sys
    mode: System
    count: 2
    vmssId: "11111111"
    kernel: 5.15.0-1068-azure
  - name: user
    count: 1
    vmssId: "22222222"
    kernel: 5.15.0-1070-azure
  - name: locked
    count: 1
    vmssId: "33333333"
    sshAccess: Disabled
  - name: win
    osType: Windows
    count: 1
"#;

const SYS0: &str = "aks-sys-11111111-vmss000000";
const SYS1: &str = "aks-sys-11111111-vmss000001";
const USER0: &str = "aks-user-22222222-vmss000000";
const LOCKED0: &str = "aks-locked-33333333-vmss000000";
const WIN0: &str = "akswin000000";

/// The emulator, driven with the system `ssh` through its bastion.
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
    let h = Harness {
        emu: Emulator::start_yaml(yaml, "bastion.rs").await,
    };
    // What an operator puts in ~/.ssh/config: `-J` passes a config file (not -i or -o) on to
    // the jump leg, so the identity and known_hosts for both legs come from here. LogLevel INFO:
    // ssh logs why a channel (a jump) could not be opened at that level.
    std::fs::write(
        h.config(),
        format!(
            "Host *\n    IdentityFile {key}\n    IdentitiesOnly yes\n    UserKnownHostsFile {kh}\n    \
             StrictHostKeyChecking accept-new\n    BatchMode yes\n    ConnectTimeout 5\n    LogLevel INFO\n",
            key = h.sim.state_dir().join("ssh/id_ed25519").display(),
            kh = h.dir.path().join("known_hosts").display(),
        ),
    )
    .expect("write the ssh config");
    h
}

impl Harness {
    fn config(&self) -> PathBuf {
        self.dir.path().join("ssh_config")
    }

    fn ip(&self, node: &str) -> String {
        self.sim.shared.node(node).expect("node exists").ip.to_string()
    }

    fn port(&self) -> String {
        self.sim.endpoints().ssh_port.to_string()
    }

    /// `user@ip:port` of the bastion.
    fn bastion(&self) -> String {
        self.sim
            .endpoints()
            .bastion
            .clone()
            .expect("the emulator serves a bastion")
    }

    /// `user@ip` of the bastion (its port goes to `-p`).
    fn bastion_login(&self) -> String {
        let b = self.bastion();
        b.rsplit_once(':').expect("user@ip:port").0.to_string()
    }

    fn ssh_command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("ssh");
        c.arg("-F")
            .arg(self.config())
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        c
    }

    /// `ssh -F <config> ARGS`.
    async fn ssh(&self, args: &[&str]) -> Output {
        tokio::time::timeout(Duration::from_secs(60), self.ssh_command(args).output())
            .await
            .unwrap_or_else(|_| panic!("ssh {args:?} did not finish in 60s"))
            .expect("ssh runs")
    }

    async fn ssh_ok(&self, args: &[&str]) -> String {
        let out = self.ssh(args).await;
        assert!(
            out.status.success(),
            "ssh {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// `ssh -J <bastion> -p <port> azureuser@<node ip> COMMAND`.
    async fn through_bastion(&self, node: &str, command: &str) -> Output {
        let (jump, port, dest) = (self.bastion(), self.port(), format!("azureuser@{}", self.ip(node)));
        self.ssh(&["-J", &jump, "-p", &port, &dest, command]).await
    }

    fn bastion_sessions(&self) -> usize {
        self.sim
            .events()
            .iter()
            .filter(|e| e.kind == kinds::SSH_SESSION && e.node.as_deref() == Some("bastion"))
            .count()
    }

    fn sshd_config(&self) -> String {
        std::fs::read_to_string(self.sim.state_dir().join("ssh/sshd_config")).expect("sshd_config")
    }

    /// Shut down and prove nothing is left behind (the bastion's root included).
    async fn finish(self) {
        self.emu.shutdown_leaves_nothing().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ssh_jump_through_the_bastion_reaches_every_node() {
    skip_unless_root!();
    let h = start(SCENARIO).await;
    let prefix = h.sim.endpoints().node_prefix.clone();
    let bastion_ip = format!("{prefix}.254");
    assert_eq!(h.bastion(), format!("azureuser@{bastion_ip}:2222"));
    let env = h.sim.env();
    assert!(
        env.iter().any(|(k, v)| k == "AKS_SIM_BASTION" && *v == h.bastion()),
        "{env:?}"
    );
    let sim_json = std::fs::read_to_string(h.sim.state_dir().join("sim.json")).expect("sim.json");
    assert!(
        sim_json.contains(&format!("\"bastion\": \"{}\"", h.bastion())),
        "{sim_json}"
    );

    // The bastion itself: a shell, its own name and kernel, none of a node's apt or power shims.
    let login = h.bastion_login();
    assert_eq!(
        h.ssh_ok(&[
            "-p",
            "2222",
            &login,
            "hostname; uname -r; hostname -I; id -un; command -v apt-get || echo no apt; command -v reboot || echo no reboot",
        ])
        .await,
        format!("bastion\n6.5.0-1025-azure\n{bastion_ip}\nazureuser\nno apt\nno reboot\n")
    );
    assert_eq!(h.bastion_sessions(), 1);

    // `ssh -J`: every node with SSH answers as itself, and each login is one session on the
    // bastion followed by one on the node.
    for (node, kernel) in [
        (SYS0, "5.15.0-1068-azure"),
        (SYS1, "5.15.0-1068-azure"),
        (USER0, "5.15.0-1070-azure"),
    ] {
        let before = h.bastion_sessions();
        let out = h.through_bastion(node, "hostname; uname -r; id -un").await;
        assert!(out.status.success(), "ssh -J to {node}: {}", stderr(&out));
        assert_eq!(stdout(&out), format!("{node}\n{kernel}\nazureuser\n"));
        assert_eq!(h.bastion_sessions(), before + 1, "one session on the bastion per jump");
        let events = h.sim.events();
        let on_bastion = events
            .iter()
            .rposition(|e| e.kind == kinds::SSH_SESSION && e.node.as_deref() == Some("bastion"))
            .expect("a bastion session");
        assert!(
            events[on_bastion..]
                .iter()
                .any(|e| e.kind == kinds::SSH_SESSION && e.node.as_deref() == Some(node)),
            "the node's session follows the bastion's: {events:?}"
        );
    }
    // The other nodes are reachable from the bastion and refuse SSH themselves, as on AKS.
    for node in [LOCKED0, WIN0] {
        let out = h.through_bastion(node, "true").await;
        assert_eq!(out.status.code(), Some(255), "{node}");
        assert!(stderr(&out).contains("Connection refused"), "{node}: {}", stderr(&out));
    }

    // The bastion forwards to the nodes' SSH port only: not to the emulator's API server,
    // not to another port of a node, and it opens no listener (ssh -R) on this host.
    let kube_port = h
        .sim
        .endpoints()
        .kube_url
        .rsplit_once(':')
        .expect("url with port")
        .1
        .to_string();
    for target in [format!("127.0.0.1:{kube_port}"), format!("{}:22", h.ip(SYS0))] {
        let out = h.ssh(&["-p", "2222", "-W", &target, &login]).await;
        assert_eq!(out.status.code(), Some(255), "-W {target}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("administratively prohibited"),
            "-W {target}: {}",
            stderr(&out)
        );
    }
    let out = h
        .ssh(&[
            "-p",
            "2222",
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-R",
            "127.0.0.1:0:127.0.0.1:9",
            &login,
        ])
        .await;
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("remote port forwarding failed"),
        "{}",
        stderr(&out)
    );
    let config = h.sshd_config();
    let block = config
        .split("Match LocalAddress ")
        .find(|b| b.starts_with(&format!("{bastion_ip}\n")))
        .unwrap_or_else(|| panic!("a block for the bastion:\n{config}"));
    assert!(block.contains("AllowTcpForwarding local"), "{block}");
    let permit: Vec<&str> = block
        .lines()
        .find_map(|l| l.trim().strip_prefix("PermitOpen "))
        .expect("PermitOpen")
        .split_whitespace()
        .collect();
    assert_eq!(permit.len(), 5, "every node address, nothing else: {permit:?}");
    assert!(permit
        .iter()
        .all(|p| p.starts_with(&format!("{prefix}.")) && p.ends_with(":2222")));

    // A node is no jump host: it refuses to forward.
    let (jump, port) = (format!("azureuser@{}:2222", h.ip(SYS0)), h.port());
    let dest = format!("azureuser@{}", h.ip(SYS1));
    let out = h.ssh(&["-J", &jump, "-p", &port, &dest, "true"]).await;
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
    assert!(stderr(&out).contains("administratively prohibited"), "{}", stderr(&out));
    assert_eq!(
        config.matches("AllowTcpForwarding").count(),
        2,
        "`no` for every node, `local` for the bastion:\n{config}"
    );
    assert!(config.contains("\nAllowTcpForwarding no\n"), "{config}");

    // aks-sim status shows it; shutdown drops an open session on it and removes its root.
    let status = h.sim.status();
    assert_eq!(status["bastion"]["ip"], bastion_ip);
    assert_eq!(status["bastion"]["sshUp"], true);
    let root = PathBuf::from(status["bastion"]["root"].as_str().expect("root"));
    assert!(root.join("bin/sh").exists(), "{}", root.display());
    let mut held = h
        .ssh_command(&["-p", "2222", &login, "echo started; sleep 60"])
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
    assert_eq!(h.sim.status()["bastion"]["sessions"], 1);
    h.finish().await;
    let status = tokio::time::timeout(Duration::from_secs(10), held.wait())
        .await
        .expect("the session on the bastion is dropped at shutdown")
        .expect("ssh waited");
    assert_eq!(status.code(), Some(255));
    assert!(!root.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_bastion_when_the_scenario_turns_it_off() {
    skip_unless_root!();
    let h = start(&format!("{SCENARIO}bastion: false\n")).await;
    assert_eq!(h.sim.endpoints().bastion, None);
    assert!(h.sim.env().iter().all(|(k, _)| k != "AKS_SIM_BASTION"));
    assert_eq!(h.sim.status()["bastion"], serde_json::Value::Null);
    let config = h.sshd_config();
    assert!(!config.contains("AllowTcpForwarding local"), "{config}");
    assert!(!config.contains("PermitOpen"), "{config}");
    let login = format!("azureuser@{}.254", h.sim.endpoints().node_prefix);
    let out = h.ssh(&["-p", "2222", &login, "true"]).await;
    assert_eq!(out.status.code(), Some(255));
    assert!(stderr(&out).contains("Connection refused"), "{}", stderr(&out));
    // The nodes are as before.
    assert_eq!(
        h.ssh_ok(&["-p", "2222", &format!("azureuser@{}", h.ip(SYS0)), "hostname"])
            .await,
        format!("{SYS0}\n")
    );
    h.finish().await;
}
