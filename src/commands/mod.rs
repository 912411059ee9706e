//! The subcommands. Each returns an [`Outcome`]: plain data for the output layer, the
//! table it is shown as, a summary line for stderr and the exit code. Nothing here prints
//! to stdout; progress and warnings go through the [`Reporter`] to stderr.

pub mod apply;
pub mod context;
pub mod fleet;
pub mod report;
pub mod scan;
pub mod summary;
pub mod via;
pub mod via_run_command;

use crate::cli::{Cli, Command};
use crate::output::{Exit, Reporter, TableSpec};
use crate::settings::Settings;

/// What a command produced.
pub struct Outcome {
    /// The result, as `-o json` prints it.
    pub value: serde_json::Value,
    /// How `-o table`/`wide`/`tsv` show it (without `--query`).
    pub table: Option<TableSpec>,
    /// A closing line for people, printed to stderr after the data.
    pub summary: Option<String>,
    pub exit: Exit,
}

pub async fn run(cli: Cli, settings: Settings, reporter: Reporter) -> anyhow::Result<Outcome> {
    let prometheus = |g: &crate::cli::GlobalArgs| g.output == crate::cli::OutputFormat::Prometheus;
    if match &cli.command {
        Command::Scan(a) => prometheus(&a.global),
        Command::Apply(a) => prometheus(&a.global),
        Command::Fleet(f) => match &f.command {
            crate::cli::FleetCommand::Scan(a) => prometheus(&a.global),
            crate::cli::FleetCommand::Apply(a) => prometheus(&a.global),
            crate::cli::FleetCommand::Report(a) => prometheus(&a.global),
        },
        _ => false,
    } {
        return Err(crate::output::Failure::new(Exit::Usage, "-o prometheus is only for `aks-patch report`")
            .hint("use `aks-patch report -o prometheus` (the last scan and run), or --pushgateway-url to push the results")
            .into());
    }
    let mut cli = cli;
    // Inside a pod there is no SSH path to the nodes: `--via kube` unless another was chosen.
    if settings.in_pod() {
        let via = match &mut cli.command {
            Command::Scan(a) => Some(&mut a.via),
            Command::Apply(a) => Some(&mut *a.via),
            Command::Fleet(f) => match &mut f.command {
                crate::cli::FleetCommand::Scan(a) => Some(&mut a.via),
                crate::cli::FleetCommand::Apply(a) => Some(&mut *a.via),
                crate::cli::FleetCommand::Report(_) => None,
            },
            Command::Report(_) => None,
        };
        if let Some(v) = via.filter(|v| !v.via_given) {
            v.via = crate::cli::ViaArg::Kube;
        }
    }
    match cli.command {
        Command::Scan(args) => scan::run(args, &settings, &reporter).await,
        Command::Apply(args) => apply::run(*args, &settings, &reporter).await,
        Command::Report(args) => report::run(args, &settings, &reporter).await,
        Command::Fleet(args) => fleet::run(args, &settings, &reporter).await,
    }
}

/// Whether the result is shown as a table (`-o table`, `wide`, `tsv` without `--query`):
/// then a command gives the table's rows rather than its whole record.
pub(crate) fn shows_table(g: &crate::cli::GlobalArgs) -> bool {
    matches!(
        g.output,
        crate::cli::OutputFormat::Table | crate::cli::OutputFormat::Wide | crate::cli::OutputFormat::Tsv
    ) && g.query.is_none()
}

/// The last scan of each cluster, kept for `report` (which uses no SSH).
pub mod scans {
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct NodeScan {
        pub scanned_at: String,
        pub reboot_required: bool,
        #[serde(default)]
        pub reboot_packages: Vec<String>,
        pub pending_updates: usize,
        /// `None` where the OS classifies no update as security (Azure Linux).
        #[serde(default)]
        pub security_updates: Option<usize>,
        pub running_kernel: String,
        /// The node's bootID when it was scanned: a scan from an earlier boot says nothing
        /// about the reboot marker now.
        #[serde(default)]
        pub boot_id: Option<String>,
    }

    fn path(state_dir: &Path, key: &str) -> PathBuf {
        state_dir.join("scans").join(format!("{key}.json"))
    }

    pub fn load(state_dir: &Path, key: &str) -> BTreeMap<String, NodeScan> {
        std::fs::read(path(state_dir, key))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Merge these nodes' results into the cluster's record (atomically).
    pub fn save(state_dir: &Path, key: &str, nodes: BTreeMap<String, NodeScan>) -> std::io::Result<()> {
        let mut all = load(state_dir, key);
        all.extend(nodes);
        let p = path(state_dir, key);
        let dir = p.parent().expect("has a parent");
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{key}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(&all).expect("serializes"))?;
        std::fs::rename(tmp, p)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn records_with_a_security_count_and_without_one_read() {
            let dir = tempfile::tempdir().unwrap();
            let old = r#"{"n1": {"scannedAt": "t", "rebootRequired": true, "pendingUpdates": 6, "securityUpdates": 4, "runningKernel": "k"}}"#;
            std::fs::create_dir_all(dir.path().join("scans")).unwrap();
            std::fs::write(dir.path().join("scans/c.json"), old).unwrap();
            assert_eq!(load(dir.path(), "c")["n1"].security_updates, Some(4));
            let azl = NodeScan {
                pending_updates: 4,
                security_updates: None,
                ..NodeScan::default()
            };
            save(dir.path(), "c", BTreeMap::from([("n2".to_string(), azl)])).unwrap();
            let all = load(dir.path(), "c");
            assert_eq!(all["n2"].security_updates, None, "no made-up count for Azure Linux");
            assert_eq!(all["n1"].security_updates, Some(4));
        }
    }
}
