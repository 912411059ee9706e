//! The state directory: what the emulator writes for its clients. `ca.pem`, the user
//! `kubeconfig`, the `az` stand-in with its token files, the service principal
//! (`sp.json`) and its federated token, and `sim.json` (the [`Endpoints`]), which
//! `aks-sim env` turns into the shell environment that points aks-patch and kubectl here.

pub mod az;
mod kubeconfig;

pub use kubeconfig::{entra_kubeconfig, kubeconfig};

use crate::Shared;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Where the emulator serves, written to `<state-dir>/sim.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// `https://127.0.0.1:PORT`: ARM, and the Entra token endpoint under `/{tenant}/oauth2/v2.0/token`.
    pub arm_url: String,
    /// `https://127.0.0.1:PORT`: the Kubernetes API server.
    pub kube_url: String,
    /// `http://127.0.0.1:PORT`: the emulator's control endpoint (status, faults).
    pub control_url: String,
    /// `https://127.0.0.1:PORT`: the webhook sink (POST `/hooks/ANY/PATH`), with the emulator's CA;
    /// every delivery is recorded in the event log (`webhook`).
    #[serde(default)]
    pub webhook_url: String,
    pub subscription_id: String,
    pub tenant_id: String,
    pub resource_group: String,
    pub cluster_name: String,
    /// The node address prefix, e.g. `127.77.3`.
    pub node_prefix: String,
    pub ssh_port: u16,
    /// The bastion (jump host) as `user@ip:port`, for `ssh -J` and `aks-patch --ssh-jump`;
    /// absent when the scenario turns it off (`bastion: false`) or has no Linux node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bastion: Option<String>,
    pub pid: u32,
}

/// Write the state directory of a started emulator (`sim.json` last: it says the emulator
/// is up).
pub fn write(shared: &Shared) -> anyhow::Result<()> {
    let d = &shared.state_dir;
    std::fs::write(d.join("ca.pem"), &shared.ca.ca_pem)?;
    write_private(&d.join("kubeconfig"), &kubeconfig(shared, false))?;
    // A fleet writes its one `az` stand-in itself.
    if shared.credential_dir == shared.state_dir {
        az::write_standin(shared)?;
    }
    std::fs::write(d.join("sim.json"), serde_json::to_string_pretty(shared.endpoints())?)?;
    Ok(())
}

/// Read `<state-dir>/sim.json` written by a running emulator.
pub fn read_endpoints(state_dir: &Path) -> anyhow::Result<Endpoints> {
    let p = state_dir.join("sim.json");
    let text = std::fs::read_to_string(&p).with_context(|| {
        format!(
            "cannot read {}: is `aks-sim up --state-dir {}` running?",
            p.display(),
            state_dir.display()
        )
    })?;
    Ok(serde_json::from_str(&text)?)
}

/// The shell environment for a state dir (what `aks-sim env` prints).
pub fn env_for(state_dir: &Path, ep: &Endpoints) -> Vec<(String, String)> {
    let d = state_dir.display();
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let bin = format!("{d}/bin");
    let path = if path.split(':').any(|p| p == bin) {
        path
    } else {
        format!("{bin}:{path}")
    };
    let mut env: Vec<(String, String)> = vec![
        ("AKS_PATCH_ARM_ENDPOINT".into(), ep.arm_url.clone()),
        ("AKS_PATCH_CA_BUNDLE".into(), format!("{d}/ca.pem")),
        // The Azure SDK for Python (requests) trusts the emulator's CA through this.
        ("REQUESTS_CA_BUNDLE".into(), format!("{d}/ca.pem")),
        ("AZURE_AUTHORITY_HOST".into(), ep.arm_url.clone()),
        ("AZURE_SUBSCRIPTION_ID".into(), ep.subscription_id.clone()),
        ("AZURE_TENANT_ID".into(), ep.tenant_id.clone()),
        ("AKS_PATCH_SSH_KEY".into(), format!("{d}/ssh/id_ed25519")),
        ("AKS_PATCH_STATE_DIR".into(), format!("{d}/aks-patch")),
        ("KUBECONFIG".into(), format!("{d}/kubeconfig")),
        ("AKS_SIM_RESOURCE_GROUP".into(), ep.resource_group.clone()),
        ("AKS_SIM_CLUSTER".into(), ep.cluster_name.clone()),
        ("AKS_SIM_STATE_DIR".into(), state_dir.display().to_string()),
    ];
    if let Some(b) = &ep.bastion {
        env.push(("AKS_SIM_BASTION".into(), b.clone()));
    }
    env.push(("PATH".into(), path));
    env
}

/// `s` as one word for a POSIX shell: as it is when that is safe, else single-quoted.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-:=,@".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Write a file only its owner may read (0600), beside it first and then renamed, so that
/// a reader never sees it half written.
pub(crate) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_when_the_shell_needs_it() {
        assert_eq!(sh_quote("/tmp/aks-sim/kubeconfig"), "/tmp/aks-sim/kubeconfig");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote(""), "''");
    }
}
