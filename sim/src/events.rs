//! The emulator's own event log: every cordon, eviction, reboot, Ready change, SSH
//! change and apt run, in order, with timestamps. Tests read it (through
//! `aks-sim status -o json` or `Sim::events()`) to prove what happened and when.

use serde::{Deserialize, Serialize};
use std::sync::Mutex;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SimEvent {
    /// 1, 2, 3, ... in the order things happened.
    pub seq: u64,
    /// RFC 3339 with milliseconds.
    pub time: String,
    /// Milliseconds since the emulator started.
    pub elapsed_ms: u64,
    /// What happened: see [`kinds`].
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// `namespace/name` of the object concerned (pod, PDB, lease), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// The event kinds the emulator records.
pub mod kinds {
    pub const CORDON: &str = "cordon";
    pub const UNCORDON: &str = "uncordon";
    pub const EVICTION: &str = "eviction";
    pub const EVICTION_REFUSED: &str = "eviction-refused";
    pub const POD_DELETED: &str = "pod-deleted";
    pub const POD_CREATED: &str = "pod-created";
    pub const POD_READY: &str = "pod-ready";
    /// A `pods/exec` stream started (detail: the command line).
    pub const POD_EXEC: &str = "pod-exec";
    /// A `pods/exec` stream was cut by the `exec-cut` fault (detail: the command line).
    pub const POD_EXEC_CUT: &str = "pod-exec-cut";
    /// A pod failed: its image never pulled, or its node rebooted under a `restartPolicy: Never` pod.
    pub const POD_FAILED: &str = "pod-failed";
    pub const REBOOT: &str = "reboot";
    pub const NODE_NOT_READY: &str = "node-not-ready";
    pub const NODE_BOOTED: &str = "node-booted";
    pub const NODE_READY: &str = "node-ready";
    pub const SSH_DOWN: &str = "ssh-down";
    pub const SSH_UP: &str = "ssh-up";
    pub const SSH_SESSION: &str = "ssh-session";
    pub const APT_UPDATE: &str = "apt-update";
    pub const APT_UPGRADE: &str = "apt-upgrade";
    pub const APT_FAILED: &str = "apt-failed";
    pub const LEASE: &str = "lease";
    pub const KURED_LOCK: &str = "kured-lock";
    pub const FAULT: &str = "fault";
    pub const REIMAGE: &str = "reimage";
    /// A VM scale set run command: started, refused (409), done, deleted.
    pub const RUN_COMMAND: &str = "run-command";
    /// A VM scale set instance restart through ARM.
    pub const VM_RESTART: &str = "vm-restart";
    /// The API server saw an Entra token for the first time (`entra token #N of PRINCIPAL`).
    pub const KUBE_TOKEN: &str = "kube-token";
    /// The API server answered 401 to a token it knows (expired, wrong audience).
    pub const KUBE_UNAUTHORIZED: &str = "kube-unauthorized";
    /// A delivery to the webhook sink: `object` = the path after `/hooks/`, `detail` = the
    /// body as received.
    pub const WEBHOOK: &str = "webhook";
}

pub struct EventLog {
    start: std::time::Instant,
    events: Mutex<Vec<SimEvent>>,
}

impl Default for EventLog {
    fn default() -> Self {
        Self::new()
    }
}

impl EventLog {
    pub fn new() -> Self {
        EventLog {
            start: std::time::Instant::now(),
            events: Mutex::new(Vec::new()),
        }
    }

    pub fn record(&self, kind: &str, node: Option<&str>, object: Option<&str>, detail: impl Into<String>) {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let seq = events.len() as u64 + 1;
        let ev = SimEvent {
            seq,
            time: crate::time::now_rfc3339_millis(),
            elapsed_ms: self.start.elapsed().as_millis() as u64,
            kind: kind.to_string(),
            node: node.map(str::to_string),
            object: object.map(str::to_string),
            detail: detail.into(),
        };
        tracing::debug!(seq, kind, node, object, detail = %ev.detail, "event");
        events.push(ev);
    }

    pub fn all(&self) -> Vec<SimEvent> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
