//! Reaching nodes over SSH: sessions ([`session`]), the read-only probe ([`probe`]), the
//! commands that change a node ([`remote`]) and probing many nodes at once ([`fanout`]).

pub mod fanout;
pub mod probe;
pub mod remote;
pub mod session;

pub use fanout::{probe_all, probe_node};
pub use probe::{PackageManager, PendingUpdate, Probe, ProbeParseError};
pub use remote::{
    parse_upgrade_output, reboot_command, refresh_command, sh_quote, upgrade_command, UpgradeMode, UpgradedPackage,
};
pub use session::{connect, parse_jump, CommandOutput, JumpHost, NodeSession, SshError, SshFlags, SshOptions};
