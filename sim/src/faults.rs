//! Faults: what can go wrong, set by the scenario or at run time (`aks-sim fault ...`,
//! `POST /faults`), and the switches the routers and the nodes read.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A fault. The one definition serves the scenario file and the control endpoint (serde)
/// and `aks-sim fault` (clap): its help is these comments.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, clap::Subcommand)]
#[serde(
    tag = "fault",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum Fault {
    /// The node reboots but never comes back.
    NodeNeverReturns { node: String },
    /// The node takes SECONDS to boot (instead of `timing.bootSeconds`).
    SlowReboot { node: String, seconds: f64 },
    /// sshd refuses connections on the node's address.
    SshDown { node: String },
    /// Bring SSH back (undo ssh-down).
    SshUp { node: String },
    /// unattended-upgrades holds the dpkg frontend lock for SECONDS.
    DpkgLock { node: String, seconds: f64 },
    /// apt-get upgrades fail on the node.
    AptFailure { node: String },
    /// A PodDisruptionBudget never allows a disruption.
    PdbNeverAllows { namespace: String, name: String },
    /// The next COUNT ARM requests get 429 with Retry-After.
    ArmThrottle {
        count: u32,
        #[serde(default = "default_retry_after")]
        #[arg(long, default_value_t = default_retry_after())]
        retry_after: u32,
    },
    /// The next COUNT ARM requests fail with STATUS (a 5xx).
    ArmError {
        count: u32,
        #[serde(default = "default_5xx")]
        #[arg(long, default_value_t = default_5xx())]
        status: u16,
    },
    /// The next COUNT Kubernetes API requests fail with STATUS (0 = connection reset).
    KubeError {
        count: u32,
        #[serde(default = "default_5xx")]
        #[arg(long, default_value_t = default_5xx())]
        status: u16,
    },
    /// The next COUNT pods/exec streams (whose command line contains COMMAND, if given) are
    /// cut once their command has started.
    ///
    /// The connection closes without an exit status or a close frame, as when the API
    /// server instance carrying the stream restarts; the command is killed with it.
    ExecCut {
        count: u32,
        #[serde(default)]
        #[arg(long)]
        command: Option<String>,
    },
    /// Pods with IMAGE never start (ErrImagePull, then ImagePullBackOff), as when a registry
    /// is unreachable from the nodes.
    ImagePullFailure { image: String },
    /// pods/exec is refused with 403 (an admission policy that forbids exec).
    ExecRefused,
    /// Every token issued so far expires: ARM answers 401 ExpiredAuthenticationToken, the
    /// Kubernetes API 401 Unauthorized.
    ExpiredToken,
    /// The webhook sink answers the next COUNT deliveries with STATUS (0 = every one).
    WebhookError {
        count: u32,
        #[serde(default = "default_webhook_status")]
        #[arg(long, default_value_t = default_webhook_status())]
        status: u16,
    },
    /// The webhook sink waits SECONDS before answering each delivery.
    WebhookSlow { seconds: f64 },
    /// sshd on the node accepts connections and never answers (a hung SSH session).
    SshHang { node: String },
    /// Run commands on the node stay InProgress forever (the agent hangs).
    RunCommandHang { node: String },
    /// The next COUNT run commands (action or managed) get 409 Conflict, as when another
    /// one runs on the instance.
    RunCommandConflict { count: u32 },
    /// Node resource group lockdown (`--nrg-lockdown-restriction-level ReadOnly`): every
    /// write in the node resource group (run commands, restart) gets 403.
    NrgLockdown,
    /// The cluster's Kubernetes API server refuses connections (its port is closed and its
    /// open connections dropped), as an unreachable cluster's does; ARM still answers.
    ApiServerDown,
    /// Bring the API server back (undo api-server-down).
    ApiServerUp,
    /// Clear every fault.
    Clear,
}

fn default_retry_after() -> u32 {
    1
}

fn default_5xx() -> u16 {
    503
}

fn default_webhook_status() -> u16 {
    500
}

impl Fault {
    /// The node the fault is about, if it is about one.
    pub fn node(&self) -> Option<&str> {
        match self {
            Fault::NodeNeverReturns { node }
            | Fault::SlowReboot { node, .. }
            | Fault::SshDown { node }
            | Fault::SshUp { node }
            | Fault::DpkgLock { node, .. }
            | Fault::AptFailure { node }
            | Fault::RunCommandHang { node }
            | Fault::SshHang { node } => Some(node),
            _ => None,
        }
    }
}

#[derive(Default, Debug)]
struct State {
    api_server_down: bool,
    never_returns: BTreeSet<String>,
    slow_reboot: BTreeMap<String, f64>,
    ssh_down: BTreeSet<String>,
    dpkg_lock_until: BTreeMap<String, Instant>,
    apt_failure: BTreeSet<String>,
    pdb_never: BTreeSet<(String, String)>,
    arm_throttle: u32,
    arm_retry_after: u32,
    arm_error: u32,
    arm_error_status: u16,
    kube_error: u32,
    kube_error_status: u16,
    exec_cut: u32,
    exec_cut_command: Option<String>,
    expired_token: bool,
    run_command_hang: BTreeSet<String>,
    ssh_hang: BTreeSet<String>,
    run_command_conflict: u32,
    nrg_lockdown: bool,
    image_pull_failure: BTreeSet<String>,
    exec_refused: bool,
    /// Deliveries left to fail (`u32::MAX`: all), with their status.
    webhook_error: u32,
    webhook_error_status: u16,
    webhook_slow: f64,
}

/// What the ARM router must do with the next request.
#[derive(Debug, PartialEq, Eq)]
pub enum ArmFault {
    Throttle { retry_after: u32 },
    Status(u16),
}

#[derive(Default)]
pub struct Faults {
    state: Mutex<State>,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Apply a fault. Node faults that act on the node's files (the dpkg lock) are also
    /// seen by the node layer through these getters.
    pub fn set(&self, fault: &Fault) {
        let mut s = self.lock();
        match fault.clone() {
            Fault::NodeNeverReturns { node } => {
                s.never_returns.insert(node);
            }
            Fault::SlowReboot { node, seconds } => {
                s.slow_reboot.insert(node, seconds);
            }
            Fault::SshDown { node } => {
                s.ssh_down.insert(node);
            }
            Fault::SshUp { node } => {
                s.ssh_down.remove(&node);
            }
            Fault::DpkgLock { node, seconds } => {
                s.dpkg_lock_until
                    .insert(node, Instant::now() + crate::time::secs(seconds));
            }
            Fault::AptFailure { node } => {
                s.apt_failure.insert(node);
            }
            Fault::PdbNeverAllows { namespace, name } => {
                s.pdb_never.insert((namespace, name));
            }
            Fault::ArmThrottle { count, retry_after } => {
                s.arm_throttle = count;
                s.arm_retry_after = retry_after;
            }
            Fault::ArmError { count, status } => {
                s.arm_error = count;
                s.arm_error_status = status;
            }
            Fault::KubeError { count, status } => {
                s.kube_error = count;
                s.kube_error_status = status;
            }
            Fault::ExecCut { count, command } => {
                s.exec_cut = count;
                s.exec_cut_command = command;
            }
            Fault::ImagePullFailure { image } => {
                s.image_pull_failure.insert(image);
            }
            Fault::ExecRefused => s.exec_refused = true,
            Fault::ExpiredToken => s.expired_token = true,
            Fault::WebhookError { count, status } => {
                s.webhook_error = if count == 0 { u32::MAX } else { count };
                s.webhook_error_status = status;
            }
            Fault::WebhookSlow { seconds } => s.webhook_slow = seconds.max(0.0),
            Fault::RunCommandHang { node } => {
                s.run_command_hang.insert(node);
            }
            Fault::SshHang { node } => {
                s.ssh_hang.insert(node);
            }
            Fault::RunCommandConflict { count } => s.run_command_conflict = count,
            Fault::NrgLockdown => s.nrg_lockdown = true,
            Fault::ApiServerDown => s.api_server_down = true,
            Fault::ApiServerUp => s.api_server_down = false,
            Fault::Clear => *s = State::default(),
        }
    }

    /// What the webhook sink does with the next delivery: its delay, and the error status
    /// to answer instead of 200 (one of the `webhook-error` count is spent).
    pub fn webhook_next(&self) -> (Duration, Option<u16>) {
        let mut s = self.lock();
        let delay = crate::time::secs(s.webhook_slow);
        let status = if s.webhook_error > 0 {
            if s.webhook_error != u32::MAX {
                s.webhook_error -= 1;
            }
            Some(s.webhook_error_status)
        } else {
            None
        };
        (delay, status)
    }

    pub fn node_never_returns(&self, node: &str) -> bool {
        self.lock().never_returns.contains(node)
    }
    pub fn slow_reboot(&self, node: &str) -> Option<f64> {
        self.lock().slow_reboot.get(node).copied()
    }
    pub fn ssh_down(&self, node: &str) -> bool {
        self.lock().ssh_down.contains(node)
    }
    /// Seconds left on a held dpkg lock, if any.
    pub fn dpkg_lock_remaining(&self, node: &str) -> Option<f64> {
        let s = self.lock();
        let until = s.dpkg_lock_until.get(node)?;
        let left = until.saturating_duration_since(Instant::now()).as_secs_f64();
        (left > 0.0).then_some(left)
    }
    pub fn apt_failure(&self, node: &str) -> bool {
        self.lock().apt_failure.contains(node)
    }
    pub fn pdb_never_allows(&self, namespace: &str, name: &str) -> bool {
        self.lock()
            .pdb_never
            .contains(&(namespace.to_string(), name.to_string()))
    }
    pub fn image_pull_fails(&self, image: &str) -> bool {
        self.lock().image_pull_failure.contains(image)
    }
    pub fn exec_refused(&self) -> bool {
        self.lock().exec_refused
    }
    pub fn expired_token(&self) -> bool {
        self.lock().expired_token
    }

    pub fn run_command_hangs(&self, node: &str) -> bool {
        self.lock().run_command_hang.contains(node)
    }
    /// Consume one injected run-command conflict, if any is pending.
    pub fn take_run_command_conflict(&self) -> bool {
        let mut s = self.lock();
        if s.run_command_conflict > 0 {
            s.run_command_conflict -= 1;
            return true;
        }
        false
    }
    /// A reboot ends a hung sshd.
    pub fn end_ssh_hang(&self, node: &str) {
        self.lock().ssh_hang.remove(node);
    }
    pub fn ssh_hangs(&self, node: &str) -> bool {
        self.lock().ssh_hang.contains(node)
    }
    pub fn nrg_lockdown(&self) -> bool {
        self.lock().nrg_lockdown
    }

    /// Consume one ARM fault for this request, if any is pending.
    pub fn take_arm(&self) -> Option<ArmFault> {
        let mut s = self.lock();
        if s.arm_throttle > 0 {
            s.arm_throttle -= 1;
            return Some(ArmFault::Throttle {
                retry_after: s.arm_retry_after,
            });
        }
        if s.arm_error > 0 {
            s.arm_error -= 1;
            return Some(ArmFault::Status(s.arm_error_status));
        }
        None
    }

    /// Consume one Kubernetes API fault: Some(0) means reset the connection.
    pub fn take_kube(&self) -> Option<u16> {
        let mut s = self.lock();
        if s.kube_error > 0 {
            s.kube_error -= 1;
            return Some(s.kube_error_status);
        }
        None
    }

    /// Whether the exec stream of `command` is to be cut (one of the `exec-cut` count is spent).
    pub fn take_exec_cut(&self, command: &str) -> bool {
        let mut s = self.lock();
        let matches = s.exec_cut_command.as_deref().is_none_or(|c| command.contains(c));
        if s.exec_cut > 0 && matches {
            s.exec_cut -= 1;
            return true;
        }
        false
    }

    /// Whether the api-server-down fault holds.
    pub fn api_server_down(&self) -> bool {
        self.lock().api_server_down
    }

    /// A summary for `aks-sim status`.
    pub fn describe(&self) -> serde_json::Value {
        let s = self.lock();
        serde_json::json!({
            "nodeNeverReturns": s.never_returns,
            "slowReboot": s.slow_reboot,
            "sshDown": s.ssh_down,
            "dpkgLock": s.dpkg_lock_until.iter().filter_map(|(n, t)| {
                let left = t.saturating_duration_since(Instant::now()).as_secs_f64();
                (left > 0.0).then(|| (n.clone(), left))
            }).collect::<BTreeMap<_, _>>(),
            "aptFailure": s.apt_failure,
            "pdbNeverAllows": s.pdb_never.iter().map(|(n, m)| format!("{n}/{m}")).collect::<Vec<_>>(),
            "armThrottleLeft": s.arm_throttle,
            "armErrorLeft": s.arm_error,
            "kubeErrorLeft": s.kube_error,
            "execCutLeft": s.exec_cut,
            "expiredToken": s.expired_token,
            "runCommandHang": s.run_command_hang,
            "sshHang": s.ssh_hang,
            "runCommandConflictLeft": s.run_command_conflict,
            "nrgLockdown": s.nrg_lockdown,
            "imagePullFailure": s.image_pull_failure,
            "execRefused": s.exec_refused,
            "apiServerDown": s.api_server_down,
        })
    }
}
