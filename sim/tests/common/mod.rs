//! What the SSH-side tests (nodes, bastion) share: output helpers and the proof that a shut
//! down emulator leaves nothing behind.
#![allow(dead_code)]

use aks_sim::Sim;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Shut down and prove nothing is left: no machine roots (nodes and bastion), no sshd for
/// this config, no process chrooted into the instance.
pub async fn shutdown_leaves_nothing(sim: Sim) {
    let rt = sim.shared.node_runtime.get().expect("node runtime");
    let instance = rt.instance_dir().to_path_buf();
    let config = sim.state_dir().join("ssh/sshd_config");
    assert!(instance.starts_with("/var/lib/aks-sim"), "{}", instance.display());
    assert!(instance.is_dir());
    sim.shutdown().await;
    assert!(!instance.exists(), "{} is left behind", instance.display());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_using(&config, &instance);
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "processes left behind: {left:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Live (not zombie) processes whose command line names `config` or whose root is under `instance`.
fn processes_using(config: &Path, instance: &Path) -> Vec<String> {
    let needle = config.display().to_string();
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let p = e.path();
        if !e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let stat = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
        if stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        {
            continue;
        }
        let cmdline = std::fs::read(p.join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let root = std::fs::read_link(p.join("root")).unwrap_or_default();
        if cmdline.contains(&needle) || root.starts_with(instance) {
            out.push(format!("{}: {cmdline}", e.file_name().to_string_lossy()));
        }
    }
    out
}

/// A kube-rs client from the emulator's kubeconfig, with kube-rs's own retries off so
/// that every status the server sends is seen.
pub async fn client(state: &Path) -> kube::Client {
    aks_sim::tls::install_crypto_provider();
    let kc = kube::config::Kubeconfig::read_from(state.join("kubeconfig")).expect("kubeconfig parses");
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .expect("config from kubeconfig");
    cfg.default_retry = false;
    kube::Client::try_from(cfg).expect("client")
}

/// Poll `f` every 100 ms until it gives a value, at most `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The API server's Status from a kube-rs error (panics on any other error).
pub fn api_status(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error Status, got {other:?}"),
    }
}
