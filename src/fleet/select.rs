//! Choosing the clusters: typed selectors in, [`ClusterRef`]s out.
//!
//! - Resource Graph over the subscriptions given (default: every subscription the credential
//!   can list), narrowed by `--tag KEY=VALUE` (all must match), `--resource-group`, `--name`
//!   and a `--where` clause ([`crate::azure::resource_graph::ClusterQuery`]);
//! - the members of an AKS Fleet Manager fleet (`--fleet RG/NAME`), each with its group;
//! - a file of cluster resource ids, one a line (`#` starts a comment).
//!
//! Each cluster is chosen once (resource ids compare without case), in a stable order.

use super::ClusterRef;
use crate::azure::fleet::FleetId;
use crate::azure::resource_graph::{parse_cluster_id, ClusterQuery};
use crate::azure::{ArmClient, AzureError};
use crate::settings::Settings;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// `KEY=VALUE`: the cluster's tag KEY (any case, as Azure compares tag names) is VALUE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSelector {
    pub key: String,
    pub value: String,
}

/// A tag selector that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("`{0}` is not KEY=VALUE")]
    NoEquals(String),
    #[error("`{0}` has an empty tag name")]
    EmptyKey(String),
}

impl FromStr for TagSelector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<TagSelector, SelectorError> {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| SelectorError::NoEquals(s.to_string()))?;
        if k.trim().is_empty() {
            return Err(SelectorError::EmptyKey(s.to_string()));
        }
        Ok(TagSelector {
            key: k.trim().to_string(),
            value: v.to_string(),
        })
    }
}

impl fmt::Display for TagSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

impl TagSelector {
    pub fn matches(&self, tags: &BTreeMap<String, String>) -> bool {
        tags.iter()
            .any(|(k, v)| k.eq_ignore_ascii_case(&self.key) && *v == self.value)
    }
}

/// Several tag selectors that must all match (`env=prod,region=eu`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSet(pub Vec<TagSelector>);

impl FromStr for TagSet {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<TagSet, SelectorError> {
        s.split(',').map(str::parse).collect::<Result<_, _>>().map(TagSet)
    }
}

impl fmt::Display for TagSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

impl TagSet {
    pub fn matches(&self, tags: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|t| t.matches(tags))
    }
}

/// Where the clusters come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A Resource Graph query over the subscriptions.
    Graph(ClusterQuery),
    /// The members of a Fleet Manager fleet: `RG/NAME` (in the first subscription given, or
    /// the default one).
    Fleet { resource_group: String, name: String },
    /// A file of cluster resource ids.
    File(PathBuf),
}

/// What the user chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Ids or names; empty: every subscription the credential can list.
    pub subscriptions: Vec<String>,
    pub source: Source,
}

/// Why the clusters could not be chosen.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("cannot list the subscriptions the credential can see")]
    Subscriptions(#[source] AzureError),
    #[error("cannot tell which subscription to use")]
    Subscription(#[source] AzureError),
    #[error("the Resource Graph query failed")]
    Query(#[source] AzureError),
    #[error("cannot list the members of {fleet}")]
    Fleet {
        fleet: String,
        #[source]
        source: AzureError,
    },
    #[error("cannot read {}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}, line {line}: `{text}` is not an AKS cluster's resource id", path.display())]
    BadId { path: PathBuf, line: usize, text: String },
}

impl SelectError {
    /// The Azure error behind it, if any (its exit code and hint).
    pub fn azure(&self) -> Option<&AzureError> {
        match self {
            SelectError::Subscriptions(e) | SelectError::Subscription(e) | SelectError::Query(e) => Some(e),
            SelectError::Fleet { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The subscription ids to query: those given (names looked up), else every one listed.
pub async fn subscriptions(arm: &ArmClient, given: &[String], settings: &Settings) -> Result<Vec<String>, SelectError> {
    if given.is_empty() {
        let subs = arm.list_subscriptions().await.map_err(SelectError::Subscriptions)?;
        return Ok(subs
            .into_iter()
            .filter(|s| s.state.as_deref().is_none_or(|st| st.eq_ignore_ascii_case("Enabled")))
            .map(|s| s.subscription_id)
            .filter(|s| !s.is_empty())
            .collect());
    }
    let mut out = vec![];
    for g in given {
        let id = arm
            .resolve_subscription(Some(g), settings)
            .await
            .map_err(SelectError::Subscription)?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// The clusters of `selection`, each once, sorted by subscription, resource group and name.
pub async fn resolve(
    arm: &ArmClient,
    selection: &Selection,
    settings: &Settings,
) -> Result<Vec<ClusterRef>, SelectError> {
    let clusters = match &selection.source {
        Source::Graph(query) => {
            let subs = subscriptions(arm, &selection.subscriptions, settings).await?;
            arm.query_clusters(&subs, query)
                .await
                .map_err(SelectError::Query)?
                .into_iter()
                .filter_map(|row| {
                    let mut c = ClusterRef::new(parse_cluster_id(&row.id).unwrap_or_else(|| {
                        crate::azure::ClusterId::new(&row.subscription_id, &row.resource_group, &row.name)
                    }));
                    c.tags = row.tags;
                    (!c.name.is_empty()).then_some(c)
                })
                .collect()
        }
        Source::Fleet { resource_group, name } => {
            let sub = match selection.subscriptions.first() {
                Some(s) => arm.resolve_subscription(Some(s), settings).await,
                None => arm.resolve_subscription(None, settings).await,
            }
            .map_err(SelectError::Subscription)?;
            let fleet = FleetId::new(sub, resource_group, name);
            let members = arm.list_fleet_members(&fleet).await.map_err(|e| SelectError::Fleet {
                fleet: fleet.to_string(),
                source: e,
            })?;
            members
                .into_iter()
                .filter_map(|m| {
                    let mut c = ClusterRef::new(m.cluster()?);
                    c.fleet_group = m.properties.group.clone();
                    Some(c)
                })
                .collect()
        }
        Source::File(path) => read_ids(path)?,
    };
    Ok(dedup_sorted(clusters))
}

/// Cluster resource ids, one a line; blank lines and `#` comments are skipped.
pub fn read_ids(path: &std::path::Path) -> Result<Vec<ClusterRef>, SelectError> {
    let text = std::fs::read_to_string(path).map_err(|e| SelectError::File {
        path: path.to_path_buf(),
        source: e,
    })?;
    parse_ids(path, &text)
}

fn parse_ids(path: &std::path::Path, text: &str) -> Result<Vec<ClusterRef>, SelectError> {
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let id = parse_cluster_id(line).ok_or_else(|| SelectError::BadId {
            path: path.to_path_buf(),
            line: i + 1,
            text: line.to_string(),
        })?;
        out.push(ClusterRef::new(id));
    }
    Ok(out)
}

fn dedup_sorted(mut clusters: Vec<ClusterRef>) -> Vec<ClusterRef> {
    let key = |c: &ClusterRef| {
        (
            c.subscription.to_lowercase(),
            c.resource_group.to_lowercase(),
            c.name.to_lowercase(),
        )
    };
    clusters.sort_by_key(key);
    clusters.dedup_by(|a, b| a.same(b));
    clusters
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn tag_selectors_read_key_equals_value_and_match_names_in_any_case() {
        let t: TagSelector = "Env=prod".parse().unwrap();
        assert!(t.matches(&tags(&[("env", "prod")])));
        assert!(!t.matches(&tags(&[("env", "Prod")])), "values are compared exactly");
        assert!(!t.matches(&tags(&[])));
        let v: TagSelector = "note=a=b".parse().unwrap();
        assert_eq!(v.value, "a=b", "the first = splits");
        assert_eq!("env".parse::<TagSelector>(), Err(SelectorError::NoEquals("env".into())));
        assert_eq!("=x".parse::<TagSelector>(), Err(SelectorError::EmptyKey("=x".into())));
        let set: TagSet = "env=prod,region=eu".parse().unwrap();
        assert!(set.matches(&tags(&[("env", "prod"), ("region", "eu")])));
        assert!(!set.matches(&tags(&[("env", "prod")])), "all of them must match");
        assert_eq!(set.to_string(), "env=prod,region=eu");
    }

    #[test]
    fn a_file_of_ids_skips_comments_and_names_a_bad_line() {
        let p = std::path::Path::new("clusters.txt");
        let text = "# prod\n/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/c1  # shop\n\n/subscriptions/s2/resourceGroups/rg2/providers/Microsoft.ContainerService/managedClusters/c2\n";
        let got = parse_ids(p, text).unwrap();
        assert_eq!(
            got.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["rg1/c1", "rg2/c2"]
        );
        let e = parse_ids(p, "c1\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "clusters.txt, line 1: `c1` is not an AKS cluster's resource id"
        );
    }

    #[test]
    fn each_cluster_is_chosen_once_in_a_stable_order() {
        let c = |s: &str, rg: &str, n: &str| ClusterRef::new(crate::azure::ClusterId::new(s, rg, n));
        let got = dedup_sorted(vec![c("s2", "rg", "b"), c("s1", "rg", "a"), c("s2", "RG", "B")]);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].subscription.as_str(), got[1].name.as_str()), ("s1", "b"));
    }
}
