//! What aks-patch knows about a node's own software, whatever reaches it: the scripts it runs
//! there and the parsers of what they print. Nothing here opens a connection; the transports
//! (`ssh`, node-shell pods, run commands) run these scripts.
//!
//! - [`probe`]: the read-only probe script and its parsers, into a [`Probe`];
//! - [`package_manager`]: apt or tdnf, chosen per node, with their commands ([`apt`], [`tdnf`]);
//! - [`upgrade`]: which upgrades to install ([`UpgradeMode`]) and what was installed;
//! - [`detached`]: the upgrade run detached from the connection, and its dpkg lock waits;
//! - [`reboot`]: the reboot command;
//! - [`command`]: quoting for `sh`, and what a script printed ([`CommandOutput`]);
//! - [`target`]: a node as a transport reaches it ([`NodeTarget`]).

pub mod apt;
pub mod command;
pub mod detached;
pub mod package_manager;
pub mod probe;
pub mod reboot;
pub mod target;
pub mod tdnf;
pub mod upgrade;

pub use command::{sh_quote, CommandOutput};
pub use detached::PackageLockWait;
pub use package_manager::PackageManager;
pub use probe::{PendingUpdate, Probe, ProbeParseError};
pub use reboot::reboot_command;
pub use target::NodeTarget;
pub use upgrade::{UpgradeMode, UpgradedPackage};
