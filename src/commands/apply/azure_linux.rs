//! Pre-flight for Azure Linux nodes: what the options cannot do there is refused before the
//! lock and before any change, naming the nodes and the flag that would allow it.

use crate::commands::scan::ScanRow;
use crate::node::tdnf::TDNF_NO_SECURITY;
use crate::node::PackageManager;
use crate::output::{Exit, Failure};
use crate::rollout::journal::{RunOptions, UpgradeMode};

/// `Some` when a planned node cannot be patched with these options.
pub(super) fn refusal(planned: &[&ScanRow], options: &RunOptions) -> Option<Failure> {
    let names = |f: &dyn Fn(&ScanRow) -> bool| -> Vec<String> {
        planned.iter().filter(|r| f(r)).map(|r| r.name.clone()).collect()
    };
    let out_of_support = names(&|r| r.end_of_support.is_some());
    if !out_of_support.is_empty() && !options.allow_azure_linux_2 {
        return Some(
            Failure::new(
                Exit::Usage,
                format!(
                    "Azure Linux 2.0 (CBL-Mariner) is out of support since 30 Nov 2025 and gets no more updates; these nodes run it: {}; nothing was changed",
                    out_of_support.join(", ")
                ),
            )
            .hint("migrate their pools to Azure Linux 3 (osSku AzureLinux3); to patch them in place meanwhile, add --allow-azure-linux-2, or leave them out with --nodepool / --nodes"),
        );
    }
    let tdnf = names(&|r| r.package_manager == Some(PackageManager::Tdnf));
    if !tdnf.is_empty() && options.upgrade_mode == UpgradeMode::Security && !options.azure_linux_security_as_all {
        return Some(
            Failure::new(
                Exit::Usage,
                format!(
                    "--upgrade-mode security cannot be applied to the Azure Linux nodes {}: {TDNF_NO_SECURITY}; nothing was changed",
                    tdnf.join(", ")
                ),
            )
            .hint("use --upgrade-mode all; or add --azure-linux-security-as-all to install all updates on those nodes (security only on Ubuntu); or leave them out with --nodepool / --nodes"),
        );
    }
    None
}
