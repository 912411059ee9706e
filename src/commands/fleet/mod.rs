//! `aks-patch fleet scan|apply|report`: glue from the flags to [`crate::fleet`]. Each cluster
//! is scanned by `scan` itself and patched by `apply` itself (through the fleet's ports), each
//! with a reporter that names the cluster.

pub mod apply;
pub mod report;
pub mod scan;

use super::context::azure_failure;
use super::Outcome;
use crate::azure::resource_graph::ClusterQuery;
use crate::azure::{ArmClient, AzureCredential, CloudEndpoints};
use crate::cli::{FleetArgs, FleetCommand, FleetSelectArgs};
use crate::fleet::select::{self, SelectError, Selection, Source};
use crate::fleet::ClusterRef;
use crate::output::{Exit, Failure, Reporter};
use crate::settings::Settings;
use std::sync::Arc;

pub async fn run(args: FleetArgs, settings: &Settings, reporter: &Reporter) -> anyhow::Result<Outcome> {
    match args.command {
        FleetCommand::Scan(a) => scan::run(*a, settings, reporter).await,
        FleetCommand::Apply(a) => apply::run(*a, settings, reporter).await,
        FleetCommand::Report(a) => report::run(*a, settings, reporter).await,
    }
}

/// What the selection flags choose.
pub fn selection(a: &FleetSelectArgs) -> Selection {
    let source = if let Some((resource_group, name)) = &a.fleet {
        Source::Fleet {
            resource_group: resource_group.clone(),
            name: name.clone(),
        }
    } else if let Some(path) = &a.clusters_file {
        Source::File(path.clone())
    } else {
        Source::Graph(ClusterQuery {
            tags: a.tags.iter().map(|t| (t.key.clone(), t.value.clone())).collect(),
            resource_groups: a.resource_groups.clone(),
            names: a.names.clone(),
            clause: a.clause.clone(),
        })
    };
    Selection {
        subscriptions: a.subscriptions.clone(),
        source,
    }
}

/// The ARM client of the fleet's credential.
pub fn arm_client(a: &FleetSelectArgs, settings: &Settings) -> anyhow::Result<Arc<ArmClient>> {
    let cloud = CloudEndpoints::resolve(a.cloud.into(), settings).map_err(azure_failure)?;
    let credential = Arc::new(AzureCredential::new(a.auth.into(), settings, &cloud).map_err(azure_failure)?);
    Ok(Arc::new(ArmClient::new(&cloud, credential).map_err(azure_failure)?))
}

/// The chosen clusters; none is a usage error (exit 2).
pub async fn choose(
    a: &FleetSelectArgs,
    arm: &ArmClient,
    settings: &Settings,
    reporter: &Reporter,
) -> anyhow::Result<Vec<ClusterRef>> {
    let sel = selection(a);
    if let Source::Graph(q) = &sel.source {
        reporter.verbose(&format!("Resource Graph query: {}", q.kql()));
    }
    let clusters = select::resolve(arm, &sel, settings).await.map_err(select_failure)?;
    if clusters.is_empty() {
        return Err(Failure::new(Exit::Usage, "no cluster matches the selection; nothing was done")
            .hint("check --subscription, --tag, -g, -n and --where (`az graph query -q \"resources | where type =~ 'microsoft.containerservice/managedclusters' | project name, resourceGroup, tags\"` lists what the credential sees)")
            .into());
    }
    reporter.verbose(&format!(
        "{} cluster(s) chosen: {}",
        clusters.len(),
        clusters.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    ));
    Ok(clusters)
}

fn select_failure(e: SelectError) -> anyhow::Error {
    let exit = match &e {
        SelectError::File { .. } | SelectError::BadId { .. } => Exit::Usage,
        other => match other.azure() {
            Some(a) if a.is_not_found() => Exit::NotFound,
            Some(a) if a.is_auth() || matches!(a, crate::azure::AzureError::NoSubscription(_)) => Exit::Auth,
            _ => Exit::Failure,
        },
    };
    let hint = e.azure().and_then(|a| a.hint());
    let err = anyhow::Error::new(e);
    let err = match hint {
        Some(h) => anyhow::Error::new(crate::output::errors::Hinted::wrap(err, h)),
        None => err,
    };
    anyhow::Error::new(crate::output::errors::WithExit::wrap(err, exit))
}

/// One line for a cluster's failure: the error and its causes.
pub fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}
