//! Which nodes aks-patch can patch, and which it patches only when asked: the OS policy,
//! from the os-release ID and version and the package managers the node has.

use crate::node::PackageManager;

/// The node's package manager, and why aks-patch cannot patch the node if it cannot (an OS
/// without apt-get or tdnf).
pub(super) fn judge_support(os_id: &str, os_version: &str, managers: &[&str]) -> (PackageManager, Option<String>) {
    let has = |m: &str| managers.contains(&m);
    match os_id {
        "azurelinux" | "mariner" if has("tdnf") => (PackageManager::Tdnf, None),
        "azurelinux" | "mariner" => (
            PackageManager::Tdnf,
            Some(format!(
                "the node is Azure Linux ({os_id} {os_version}) but has no tdnf: aks-patch cannot patch it"
            )),
        ),
        _ if has("apt-get") => (PackageManager::Apt, None),
        _ if has("tdnf") || has("dnf") => (
            PackageManager::Tdnf,
            Some(format!(
                "the node ({}) has no apt-get but tdnf/dnf; aks-patch patches Ubuntu (apt) and Azure Linux (tdnf) nodes only",
                if os_id.is_empty() { "unknown OS" } else { os_id }
            )),
        ),
        _ => (
            PackageManager::Unknown,
            Some(format!(
                "the node ({}) has no apt-get: aks-patch cannot patch it",
                if os_id.is_empty() { "unknown OS" } else { os_id }
            )),
        ),
    }
}

/// The end-of-support notice of an OS that gets no more updates (Azure Linux 2.0): the fact
/// and what to do. Such nodes are patched only when asked explicitly.
pub(super) fn end_of_support(os_id: &str, os_version: &str) -> Option<String> {
    (os_id == "mariner").then(|| {
        format!(
            "Azure Linux 2.0 (CBL-Mariner {os_version}) is out of support since 30 Nov 2025 and gets no more updates: \
             migrate the pool to Azure Linux 3 (osSku AzureLinux3)"
        )
    })
}
