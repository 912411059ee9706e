//! Fleets: many clusters chosen at once, scanned together, patched in stages.
//!
//! Between the commands and the rollout: [`select`] turns typed selectors (subscriptions,
//! tags, resource group, names, a Resource Graph `where` clause, an AKS Fleet Manager fleet,
//! a file of cluster ids) into [`ClusterRef`]s; [`stages`] orders them (`--stage` tag
//! selectors, or a Fleet Manager update strategy); [`schedule`] runs the stages, each
//! cluster through the [`schedule::ClusterRollout`] port, which `commands` implements with
//! exactly the rollout of `apply` (its own lock, pre-flight, gate, window, run record);
//! [`record`] is the fleet run record that ties the cluster runs together for `--resume`;
//! [`scan`] fans a scan out over the clusters and sums each one up in a row.

pub mod record;
pub mod scan;
pub mod schedule;
pub mod select;
pub mod stages;

use crate::azure::ClusterId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// One cluster of a fleet: where it is, its tags, and its Fleet Manager update group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRef {
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// The member's group in the AKS Fleet Manager fleet it was chosen from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet_group: Option<String>,
}

impl ClusterRef {
    pub fn new(id: ClusterId) -> ClusterRef {
        ClusterRef {
            subscription: id.subscription,
            resource_group: id.resource_group,
            name: id.name,
            tags: BTreeMap::new(),
            fleet_group: None,
        }
    }

    /// Its ARM coordinates.
    pub fn id(&self) -> ClusterId {
        ClusterId::new(&self.subscription, &self.resource_group, &self.name)
    }

    /// How the run records and the last scans name it.
    pub fn record_ref(&self) -> crate::rollout::journal::ClusterRef {
        crate::rollout::journal::ClusterRef::arm(&self.subscription, &self.resource_group, &self.name)
    }

    /// Its ARM resource id.
    pub fn resource_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerService/managedClusters/{}",
            self.subscription, self.resource_group, self.name
        )
    }

    /// The same cluster (resource ids compare without case).
    pub fn same(&self, other: &ClusterRef) -> bool {
        self.resource_id().eq_ignore_ascii_case(&other.resource_id())
    }
}

impl fmt::Display for ClusterRef {
    /// `RG/NAME`: what progress lines and tables call it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.resource_group, self.name)
    }
}
