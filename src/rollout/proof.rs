//! The proof that a node is patched. The engine records a node `done` only with one of
//! these values, and the only way to build one is from the observations that prove it:
//!
//! - [`RebootProof`], for a node that was rebooted: a new bootID (not the one it had before
//!   the reboot), Ready, the reboot marker absent (on Azure Linux `needs-restarting -r`
//!   clean) and no pending update of the run's mode, all observed after the reboot;
//! - [`UpgradeProof`], for a node that needed no reboot: the probe after its upgrade found
//!   nothing of the run's mode pending, and no reboot marker (unless `--reboot never`).
//!
//! When the observations do not prove it, the constructors refuse with [`NoProof`], which
//! says what is missing.

use super::journal::{self, RebootPolicy, Time, UpgradeMode};
use crate::kube::NodeInfo;
use crate::node::Probe;
use serde::{Deserialize, Serialize};

/// Why the observations do not prove a node patched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoProof {
    #[error("it still has its old bootID {boot_id} (it did not reboot)")]
    SameBoot { boot_id: String },
    #[error("its bootID is unknown")]
    NoBootId,
    #[error("it is not Ready")]
    NotReady,
    #[error("the probe ran before the reboot (it saw the old bootID {boot_id})")]
    ProbeBeforeReboot { boot_id: String },
    #[error("{what} ({})", .packages.join(", "))]
    RebootStillRequired { what: &'static str, packages: Vec<String> },
    #[error("{} update(s) of {} mode are still pending ({})", .packages.len(), mode_text(*.mode), .packages.join(", "))]
    Pending { mode: UpgradeMode, packages: Vec<String> },
}

fn mode_text(mode: UpgradeMode) -> String {
    super::journal::enum_text(&mode)
}

/// The pending updates of `mode` that `probe` still finds.
pub fn pending_of(mode: UpgradeMode, probe: &Probe) -> Vec<String> {
    match effective_mode(mode, probe) {
        UpgradeMode::Security => probe.security_packages(),
        UpgradeMode::All | UpgradeMode::Dist => probe.pending.iter().map(|u| u.name.clone()).collect(),
    }
}

/// The mode a node is upgraded in: Azure Linux classifies no update as security, so
/// `Security` there means all updates (allowed only with `--azure-linux-security-as-all`;
/// the engine refuses it otherwise).
pub fn effective_mode(mode: UpgradeMode, probe: &Probe) -> UpgradeMode {
    if mode == UpgradeMode::Security && !probe.classifies_security() {
        UpgradeMode::All
    } else {
        mode
    }
}

/// What still asks for a reboot in `probe`, in words, if anything does.
fn reboot_still_required(probe: &Probe) -> Option<NoProof> {
    probe.reboot_required.then(|| NoProof::RebootStillRequired {
        what: if probe.needs_restarting {
            "`needs-restarting -r` still says a reboot is required"
        } else {
            "/var/run/reboot-required is still there"
        },
        packages: probe.reboot_packages.clone(),
    })
}

/// A rebooted node is patched: what was observed after its reboot, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebootProof {
    boot_id_before: String,
    boot_id_after: String,
    kernel: String,
    observed_at: Time,
}

impl RebootProof {
    /// The proof from the node as the API server shows it after the reboot (`row`) and the
    /// probe run on it after the reboot; refused unless the bootID is new, the node Ready,
    /// the marker absent and nothing of `mode` pending.
    pub fn new(boot_id_before: &str, row: &NodeInfo, probe: &Probe, mode: UpgradeMode) -> Result<RebootProof, NoProof> {
        let after = row.boot_id.clone().filter(|b| !b.is_empty()).ok_or(NoProof::NoBootId)?;
        if after == boot_id_before {
            return Err(NoProof::SameBoot { boot_id: after });
        }
        if !row.is_ready() {
            return Err(NoProof::NotReady);
        }
        if let Some(seen) = probe.boot_id.as_deref().filter(|b| *b == boot_id_before) {
            return Err(NoProof::ProbeBeforeReboot {
                boot_id: seen.to_string(),
            });
        }
        if let Some(no) = reboot_still_required(probe) {
            return Err(no);
        }
        let packages = pending_of(mode, probe);
        if !packages.is_empty() {
            return Err(NoProof::Pending { mode, packages });
        }
        Ok(RebootProof {
            boot_id_before: boot_id_before.to_string(),
            boot_id_after: after,
            kernel: probe.running_kernel.clone(),
            observed_at: journal::now(),
        })
    }

    pub fn boot_id_after(&self) -> &str {
        &self.boot_id_after
    }

    pub fn kernel(&self) -> &str {
        &self.kernel
    }
}

/// A node that needed no reboot is patched: what the probe after its upgrade found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeProof {
    kernel: String,
    boot_id: Option<String>,
    reboot_required: bool,
    observed_at: Time,
}

impl UpgradeProof {
    /// The proof from the probe after the upgrade; refused while something of `mode` is
    /// pending, or a reboot is required (unless the run's policy is `--reboot never`).
    pub fn new(probe: &Probe, mode: UpgradeMode, reboot: RebootPolicy) -> Result<UpgradeProof, NoProof> {
        if reboot != RebootPolicy::Never {
            if let Some(no) = reboot_still_required(probe) {
                return Err(no);
            }
        }
        let packages = pending_of(mode, probe);
        if !packages.is_empty() {
            return Err(NoProof::Pending { mode, packages });
        }
        Ok(UpgradeProof {
            kernel: probe.running_kernel.clone(),
            boot_id: probe.boot_id.clone(),
            reboot_required: probe.reboot_required,
            observed_at: journal::now(),
        })
    }

    pub fn kernel(&self) -> &str {
        &self.kernel
    }
}

/// What a node's `done` rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    Rebooted(RebootProof),
    NotRebooted(UpgradeProof),
}

impl Proof {
    /// The kernel the node was observed running.
    pub fn kernel(&self) -> &str {
        match self {
            Proof::Rebooted(p) => p.kernel(),
            Proof::NotRebooted(p) => p.kernel(),
        }
    }

    /// As the run record keeps it.
    pub fn record(&self) -> ProofRecord {
        match self {
            Proof::Rebooted(p) => ProofRecord {
                rebooted: true,
                boot_id_before: Some(p.boot_id_before.clone()),
                boot_id_after: Some(p.boot_id_after.clone()),
                kernel: p.kernel.clone(),
                reboot_required: false,
                pending: 0,
                observed_at: p.observed_at,
            },
            Proof::NotRebooted(p) => ProofRecord {
                rebooted: false,
                boot_id_before: None,
                boot_id_after: p.boot_id.clone(),
                kernel: p.kernel.clone(),
                reboot_required: p.reboot_required,
                pending: 0,
                observed_at: p.observed_at,
            },
        }
    }
}

/// A node's proof in the run record (`proof`): what was observed, and when.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProofRecord {
    /// Proven after a reboot (else after the upgrade, no reboot needed).
    pub rebooted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id_before: Option<String>,
    /// The bootID seen after the reboot (or by the probe after the upgrade).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id_after: Option<String>,
    /// The kernel the node ran when observed.
    pub kernel: String,
    /// A reboot was still required (only with `--reboot never`).
    #[serde(default)]
    pub reboot_required: bool,
    /// Pending updates of the run's mode when observed (always 0: a proof has none).
    #[serde(default)]
    pub pending: usize,
    #[serde(with = "journal::ms")]
    pub observed_at: Time,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{PackageManager, PendingUpdate};

    fn row(boot: &str, ready: bool) -> NodeInfo {
        NodeInfo {
            name: "n0".into(),
            readiness: if ready {
                crate::kube::Readiness::Ready
            } else {
                crate::kube::Readiness::NotReady
            },
            kernel_version: Some("k2".into()),
            boot_id: Some(boot.into()),
            ..Default::default()
        }
    }

    fn probe(boot: &str, marker: bool, pending: &[&str]) -> Probe {
        Probe {
            running_kernel: "k2".into(),
            os_id: "ubuntu".into(),
            os_version: "22.04".into(),
            os_pretty_name: None,
            boot_id: Some(boot.into()),
            booted_at: None,
            uptime_seconds: None,
            package_manager: PackageManager::Apt,
            pending: pending
                .iter()
                .map(|p| PendingUpdate {
                    name: p.to_string(),
                    from: "1".into(),
                    to: "2".into(),
                    pockets: vec!["jammy-security".into()],
                    arch: "amd64".into(),
                    security: true,
                })
                .collect(),
            reboot_required: marker,
            reboot_packages: if marker { vec!["linux-image".into()] } else { vec![] },
            refreshed: false,
            refresh_error: None,
            unsupported: None,
            end_of_support: None,
            needs_restarting: false,
        }
    }

    #[test]
    fn a_reboot_is_proven_only_by_a_new_boot_ready_no_marker_and_nothing_pending() {
        let all = UpgradeMode::All;
        let p = RebootProof::new("b1", &row("b2", true), &probe("b2", false, &[]), all).unwrap();
        assert_eq!(p.boot_id_after(), "b2");
        let r = Proof::Rebooted(p).record();
        assert_eq!(r.boot_id_before.as_deref(), Some("b1"));
        assert!(r.rebooted);
        assert!(matches!(
            RebootProof::new("b1", &row("b1", true), &probe("b1", false, &[]), all),
            Err(NoProof::SameBoot { .. })
        ));
        assert_eq!(
            RebootProof::new("b1", &row("b2", false), &probe("b2", false, &[]), all),
            Err(NoProof::NotReady)
        );
        assert!(matches!(
            RebootProof::new("b1", &row("b2", true), &probe("b1", false, &[]), all),
            Err(NoProof::ProbeBeforeReboot { .. })
        ));
        let e = RebootProof::new("b1", &row("b2", true), &probe("b2", true, &[]), all).unwrap_err();
        assert!(e.to_string().contains("/var/run/reboot-required is still there"), "{e}");
        let e = RebootProof::new("b1", &row("b2", true), &probe("b2", false, &["openssl"]), all).unwrap_err();
        assert!(e.to_string().contains("openssl"), "{e}");
    }

    #[test]
    fn a_node_without_reboot_is_proven_by_its_probe_after_the_upgrade() {
        let all = UpgradeMode::All;
        assert!(UpgradeProof::new(&probe("b1", false, &[]), all, RebootPolicy::IfRequired).is_ok());
        assert!(UpgradeProof::new(&probe("b1", false, &["openssl"]), all, RebootPolicy::IfRequired).is_err());
        assert!(UpgradeProof::new(&probe("b1", true, &[]), all, RebootPolicy::IfRequired).is_err());
        let p = UpgradeProof::new(&probe("b1", true, &[]), all, RebootPolicy::Never).unwrap();
        assert!(Proof::NotRebooted(p).record().reboot_required);
    }
}
