//! What the read-only probe found on each node before any change: `scan` shows it, and
//! `apply`'s pre-flight decides from it what will certainly fail.

use crate::node::Probe;
use crate::transport::ProbeError;

/// The probe of one node.
#[derive(Debug)]
pub struct ProbedNode {
    pub name: String,
    pub result: ProbeResult,
}

/// What the probe of a node gave.
#[derive(Debug)]
pub enum ProbeResult {
    /// Not probed: the node is not patched in place (Windows, no way to reach it).
    NotProbed,
    Probed(Box<Probe>),
    /// The probe failed (the node could not be reached, or the probe not run): why.
    Failed(ProbeError),
}

impl ProbedNode {
    pub fn probe(&self) -> Option<&Probe> {
        match &self.result {
            ProbeResult::Probed(p) => Some(p.as_ref()),
            _ => None,
        }
    }

    pub fn error(&self) -> Option<&ProbeError> {
        match &self.result {
            ProbeResult::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// The node will need a reboot whatever the upgrade brings: it has the reboot marker, or a
    /// new kernel is pending.
    pub fn reboot_certain(&self) -> bool {
        self.probe()
            .is_some_and(|p| p.reboot_required || p.pending_kernel().is_some())
    }

    /// `uname -r` on the node, when it was probed.
    pub fn running_kernel(&self) -> Option<&str> {
        self.probe().map(|p| p.running_kernel.as_str())
    }
}

/// The probe of `name` among `probes`.
pub fn of<'a>(probes: &'a [ProbedNode], name: &str) -> Option<&'a ProbedNode> {
    probes.iter().find(|p| p.name == name)
}
