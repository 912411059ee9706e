//! What an upgrade is asked to install, and what it installed.

use serde::{Deserialize, Serialize};

/// Which upgrades to install (`--upgrade-mode`; the run record keeps it, kebab-case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpgradeMode {
    /// Only packages from the -security pocket (what unattended-upgrades installs).
    Security,
    /// All upgrades, installing new packages they need (new kernels).
    All,
    /// `apt-get dist-upgrade`: may also remove packages.
    Dist,
}

/// A package that `apt-get` set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradedPackage {
    pub name: String,
    pub version: String,
}
