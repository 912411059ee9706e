//! src/ssh end to end against aks-sim's nodes: real sshd, real ssh client, the node
//! shims' apt output; probing many nodes through the SSH transport.

use crate::common::Emulator;
use aks_patch::node::apt::{parse_upgrade_output, upgrade_command};
use aks_patch::node::probe::probe_script;
use aks_patch::node::{reboot_command, NodeTarget, Probe, UpgradeMode};
use aks_patch::ssh::{connect, SshError, SshOptions};
use aks_patch::transport::ssh::SshShell;
use aks_patch::transport::{probe_all, probe_one, NodeShell, ProbeError, ShellError};
use aks_sim::{model::NodeSpec, Fault};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The emulator, and a short-pathed directory for known_hosts and the SSH control sockets.
struct Env {
    emu: Emulator,
    client: tempfile::TempDir,
}

impl std::ops::Deref for Env {
    type Target = Emulator;
    fn deref(&self) -> &Emulator {
        &self.emu
    }
}

impl Env {
    async fn start() -> Env {
        let emu = Emulator::default().await;
        let client = tempfile::Builder::new()
            .prefix("akp")
            .tempdir_in("/tmp")
            .expect("temp dir");
        Env { emu, client }
    }

    fn opts(&self) -> SshOptions {
        let mut o = SshOptions::new(
            "azureuser",
            self.client.path().join("known_hosts"),
            self.client.path().to_path_buf(),
        );
        o.key = Some(self.sim.state_dir().join("ssh/id_ed25519"));
        o.connect_timeout = Duration::from_secs(10);
        o
    }

    /// The default scenario's Ubuntu nodes (apt; its Azure Linux node has tests of its own).
    fn ubuntu(&self) -> Vec<NodeSpec> {
        self.sim
            .shared
            .nodes
            .iter()
            .filter(|n| n.is_linux() && n.os_sku == "Ubuntu")
            .cloned()
            .collect()
    }

    fn spec(&self, name: &str) -> NodeSpec {
        self.sim
            .shared
            .node(name)
            .cloned()
            .unwrap_or_else(|| panic!("no node {name}"))
    }
}

const REBOOT_WAITING: &str = "aks-user-31417037-vmss000001";
const T: Duration = Duration::from_secs(60);

fn target(name: &str, address: &str) -> NodeTarget {
    NodeTarget {
        name: name.to_string(),
        address: address.to_string(),
    }
}

/// Probe one node over a fresh SSH session, within `timeout`.
async fn probe_node(opts: &SshOptions, node: &str, address: &str, timeout: Duration) -> Result<Probe, ProbeError> {
    let shell = SshShell::new(opts.clone());
    let node = target(node, address);
    let r = match tokio::time::timeout(timeout, probe_one(&shell, &node, &probe_script(false, 60), timeout)).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::Timeout {
            node: node.name.clone(),
            after: timeout,
        }),
    };
    shell.release_all().await;
    r
}

fn names(p: &Probe) -> BTreeSet<String> {
    p.pending.iter().map(|u| u.name.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_every_linux_node() {
    skip_unless_root!();
    let env = Env::start().await;
    let linux = env.ubuntu();
    assert_eq!(linux.len(), 5, "the default scenario has 5 Ubuntu nodes");
    let nodes: Vec<NodeTarget> = linux.iter().map(|n| target(&n.name, &n.ip.to_string())).collect();
    let shell = SshShell::new(env.opts());
    let probed = Mutex::new(BTreeSet::new());
    let results = probe_all(&shell, nodes.clone(), 3, false, T, &|n, _| {
        probed.lock().unwrap().insert(n.name.clone());
    })
    .await;

    // In input order, one per node, each one reported as probed.
    let got: Vec<&String> = results.iter().map(|(n, _)| n).collect();
    let want: Vec<&String> = nodes.iter().map(|n| &n.name).collect();
    assert_eq!(got, want);
    assert_eq!(
        probed.into_inner().unwrap(),
        nodes.iter().map(|n| n.name.clone()).collect::<BTreeSet<_>>()
    );
    for (name, r) in &results {
        let spec = env.spec(name);
        let p = r.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.running_kernel, spec.kernel, "{name}");
        assert_eq!(p.os_id, "ubuntu", "{name}");
        assert_eq!(p.os_version, "22.04", "{name}");
        assert!(p.is_supported(), "{name}");
        assert_eq!(
            p.boot_id.as_deref(),
            Some(env.boot_id(name).as_str()),
            "{name}: bootID as on the Node"
        );
        assert!(p.uptime_seconds.is_some(), "{name}");
        let want_names: BTreeSet<String> = spec.updates.iter().map(|u| u.name.clone()).collect();
        assert_eq!(names(p), want_names, "{name}: pending updates");
        let want_security = spec.updates.iter().filter(|u| u.pocket.ends_with("-security")).count();
        assert_eq!(p.security_count(), want_security, "{name}: security updates");
        for u in &p.pending {
            let s = spec
                .updates
                .iter()
                .find(|x| x.name == u.name)
                .expect("listed update is in the scenario");
            assert_eq!(
                (u.from.as_str(), u.to.as_str()),
                (s.from.as_str(), s.to.as_str()),
                "{name} {}",
                u.name
            );
        }
        assert_eq!(
            p.reboot_required,
            !spec.reboot_required.is_empty(),
            "{name}: reboot marker"
        );
        assert_eq!(p.reboot_packages, spec.reboot_required, "{name}: reboot packages");
        if name == REBOOT_WAITING {
            assert!(p.reboot_required);
            assert_eq!(p.pending_count(), 0);
            assert_eq!(p.pending_kernel().as_deref(), Some("5.15.0-1073-azure"));
        } else {
            assert_eq!(p.pending_count(), 6, "{name}");
            assert_eq!(p.security_count(), 4, "{name}");
            assert_eq!(p.pending_kernel().as_deref(), Some("5.15.0-1073-azure"), "{name}");
        }
    }
    // New host keys were recorded in aks-patch's own known_hosts.
    for n in &nodes {
        assert!(
            !known_entries(&env.opts().known_hosts, &n.address).is_empty(),
            "{} not in known_hosts",
            n.address
        );
    }
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_failures_are_classified() {
    skip_unless_root!();
    let env = Env::start().await;
    let linux = env.ubuntu();
    let (a, b) = (&linux[0], &linux[1]);
    let opts = env.opts();

    // Unknown key with strict checking: refused, nothing recorded.
    let mut strict = opts.clone();
    strict.strict_host_keys = true;
    let e = connect(&strict, &a.name, &a.ip.to_string())
        .await
        .expect_err("strict refuses unknown keys");
    assert!(matches!(e, SshError::HostKeyUnknown { .. }), "{e:?}");
    eprintln!("unknown: {e}");
    assert!(e.to_string().contains(&a.name));

    // Record the key (accept-new), then strict works.
    connect(&opts, &a.name, &a.ip.to_string())
        .await
        .expect("accept-new")
        .close()
        .await
        .unwrap();
    connect(&strict, &a.name, &a.ip.to_string())
        .await
        .expect("known now")
        .close()
        .await
        .unwrap();

    // A changed key: replace the recorded key of a's address with another valid key.
    let other = other_host_key(env.client.path());
    let kh = std::fs::read_to_string(&opts.known_hosts).unwrap();
    let ip = a.ip.to_string();
    // Entries may be hashed (HashKnownHosts): find a's with ssh-keygen -F.
    let mine = known_entries(&opts.known_hosts, &ip);
    assert!(!mine.is_empty(), "{ip} not in known_hosts");
    let edited: String = kh
        .lines()
        .map(|l| {
            if mine.iter().any(|m| m == l) {
                format!("{} {other}\n", l.split_whitespace().next().unwrap_or_default())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_ne!(edited, kh, "the key of {ip} was in known_hosts");
    std::fs::write(&opts.known_hosts, edited).unwrap();
    let e = connect(&opts, &a.name, &ip).await.expect_err("changed key is refused");
    match &e {
        SshError::HostKeyChanged {
            node,
            address,
            known_hosts,
            ..
        } => {
            assert_eq!(node, &a.name);
            assert_eq!(address, &ip);
            assert_eq!(known_hosts, &opts.known_hosts);
        }
        other => panic!("expected HostKeyChanged, got {other:?}"),
    }
    let msg = e.to_string();
    eprintln!("changed: {msg}");
    assert!(
        msg.contains(&format!("ssh-keygen -R {ip} -f {}", opts.known_hosts.display())),
        "{msg}"
    );
    // Following the advice fixes it.
    let st = std::process::Command::new("ssh-keygen")
        .args(["-R", &ip, "-f"])
        .arg(&opts.known_hosts)
        .output()
        .unwrap();
    assert!(st.status.success());
    connect(&opts, &a.name, &ip)
        .await
        .expect("after clearing the key")
        .close()
        .await
        .unwrap();

    // A key the node does not accept.
    let mut wrong = opts.clone();
    wrong.key = Some(new_client_key(env.client.path()));
    let e = connect(&wrong, &b.name, &b.ip.to_string())
        .await
        .expect_err("wrong key");
    assert!(matches!(e, SshError::AuthRefused { .. }), "{e:?}");
    eprintln!("auth: {e}");
    assert!(e.to_string().contains("azureuser"));

    // sshd down on a node: unreachable, and a row in probe_all, not a crash.
    env.sim.fault(Fault::SshDown { node: b.name.clone() }).unwrap();
    let e = connect(&opts, &b.name, &b.ip.to_string()).await.expect_err("ssh down");
    assert!(matches!(e, SshError::Unreachable { .. }), "{e:?}");
    assert!(e.to_string().contains("Connection refused"), "{e}");
    eprintln!("unreachable: {e}");
    let rows = probe_all(
        &SshShell::new(opts.clone()),
        vec![target(&a.name, &a.ip.to_string()), target(&b.name, &b.ip.to_string())],
        2,
        false,
        T,
        &|_, _| {},
    )
    .await;
    assert!(rows[0].1.is_ok(), "{:?}", rows[0].1);
    assert!(
        matches!(
            &rows[1].1,
            Err(ProbeError::Shell(ShellError::Ssh(SshError::Unreachable { .. })))
        ),
        "{:?}",
        rows[1].1
    );
    env.sim.fault(Fault::SshUp { node: b.name.clone() }).unwrap();
    probe_node(&opts, &b.name, &b.ip.to_string(), T).await.expect("back up");
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_exit_codes_and_timeouts() {
    skip_unless_root!();
    let env = Env::start().await;
    let n = &env.ubuntu()[0];
    let s = connect(&env.opts(), &n.name, &n.ip.to_string()).await.expect("connect");
    let o = s.run("echo out; echo err >&2; exit 3", T).await.unwrap();
    assert_eq!(
        (o.stdout.as_str(), o.stderr.as_str(), o.exit_code),
        ("out\n", "err\n", 3)
    );
    // 127 and 255 are the script's, not ssh's.
    assert_eq!(s.run("no-such-command-here", T).await.unwrap().exit_code, 127);
    assert_eq!(s.run("exit 255", T).await.unwrap().exit_code, 255);
    // Quoting survives the login shell.
    let o = s
        .run("printf '%s|' \"$0\" 'it'\\''s' '$HOME' \"a  b\"", T)
        .await
        .unwrap();
    assert_eq!(o.stdout, "sh|it's|$HOME|a  b|");
    let e = s.run_checked("echo E: broken >&2; exit 100", T).await.unwrap_err();
    match e {
        SshError::Remote {
            exit_code, stderr_tail, ..
        } => {
            assert_eq!(exit_code, 100);
            assert_eq!(stderr_tail, "E: broken");
        }
        other => panic!("{other:?}"),
    }
    let e = s.run("sleep 5", Duration::from_millis(500)).await.unwrap_err();
    assert!(matches!(e, SshError::Timeout { .. }), "{e:?}");
    assert!(s.is_alive().await);
    s.close().await.unwrap();
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_then_reboot() {
    skip_unless_root!();
    let env = Env::start().await;
    let opts = env.opts();
    let linux = env.ubuntu();
    let (all, sec) = (&linux[0], &linux[2]);

    // --upgrade-mode all: everything, the new kernel included.
    let s = connect(&opts, &all.name, &all.ip.to_string()).await.unwrap();
    let cmd = upgrade_command(UpgradeMode::All, 120, &[]).unwrap();
    let out = s.run_checked(&cmd, T).await.unwrap_or_else(|e| panic!("{e}"));
    let up = parse_upgrade_output(&out.stdout);
    let upgraded: BTreeSet<String> = up.iter().map(|p| p.name.clone()).collect();
    for u in &all.updates {
        assert!(upgraded.contains(&u.name), "{} not set up:\n{}", u.name, out.stdout);
        let v = &up.iter().find(|p| p.name == u.name).unwrap().version;
        assert_eq!(v, &u.to);
    }
    assert!(
        upgraded.contains("linux-image-5.15.0-1073-azure"),
        "new kernel ABI package:\n{}",
        out.stdout
    );
    s.close().await.unwrap();
    let p = probe_node(&opts, &all.name, &all.ip.to_string(), T).await.unwrap();
    assert_eq!(p.pending_count(), 0);
    assert!(p.reboot_required);
    assert!(
        p.reboot_packages.iter().any(|x| x == "linux-image-5.15.0-1073-azure"),
        "{:?}",
        p.reboot_packages
    );

    // --upgrade-mode security: only the -security packages of a fresh probe.
    let before = probe_node(&opts, &sec.name, &sec.ip.to_string(), T).await.unwrap();
    let pkgs = before.security_packages();
    assert_eq!(pkgs.len(), 4);
    let s = connect(&opts, &sec.name, &sec.ip.to_string()).await.unwrap();
    let out = s
        .run_checked(&upgrade_command(UpgradeMode::Security, 120, &pkgs).unwrap(), T)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let done: BTreeSet<String> = parse_upgrade_output(&out.stdout).into_iter().map(|p| p.name).collect();
    for p in &pkgs {
        assert!(done.contains(p), "{p} not upgraded:\n{}", out.stdout);
    }
    s.close().await.unwrap();
    let after = probe_node(&opts, &sec.name, &sec.ip.to_string(), T).await.unwrap();
    assert_eq!(after.security_count(), 0);
    let left: BTreeSet<String> = names(&after);
    assert_eq!(left, ["curl", "tzdata"].iter().map(|s| s.to_string()).collect());

    // Reboot: returns at once; the session drop is expected.
    let boot_before = p.boot_id.clone().expect("boot id");
    let s = connect(&opts, &all.name, &all.ip.to_string()).await.unwrap();
    let started = Instant::now();
    match s.run(&reboot_command(), T).await {
        Ok(o) => assert_eq!(o.exit_code, 0, "{o:?}"),
        Err(SshError::Disconnected { .. }) => {}
        Err(e) => panic!("reboot: {e}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "reboot command returned at once"
    );
    let _ = s.close().await;
    // The node comes back with a new boot id and the new kernel.
    let deadline = Instant::now() + Duration::from_secs(90);
    let back = loop {
        match probe_node(&opts, &all.name, &all.ip.to_string(), Duration::from_secs(15)).await {
            Ok(p) if p.boot_id.as_deref() != Some(boot_before.as_str()) => break p,
            _ if Instant::now() > deadline => panic!("{} did not come back with a new boot id", all.name),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    assert_eq!(back.running_kernel, "5.15.0-1073-azure");
    assert!(!back.reboot_required);
    assert_eq!(back.boot_id.as_deref(), Some(env.boot_id(&all.name).as_str()));
    env.emu.shutdown().await;
}

/// The known_hosts lines for a host (hashed or not), as `ssh-keygen -F` finds them.
fn known_entries(file: &Path, host: &str) -> Vec<String> {
    let out = std::process::Command::new("ssh-keygen")
        .args(["-F", host, "-f"])
        .arg(file)
        .output()
        .expect("ssh-keygen runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// A host key that is not the node's (ssh-keygen into `dir`), as `type base64`.
fn other_host_key(dir: &Path) -> String {
    let p = new_client_key(dir);
    let pubkey = std::fs::read_to_string(p.with_extension("pub")).unwrap();
    let mut f = pubkey.split_whitespace();
    format!("{} {}", f.next().unwrap(), f.next().unwrap())
}

fn new_client_key(dir: &Path) -> std::path::PathBuf {
    let p = dir.join(format!("key{}", rand_suffix()));
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&p)
        .output()
        .expect("ssh-keygen runs");
    assert!(out.status.success(), "{out:?}");
    p
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
