//! kured's reboot lock: the annotation `weave.works/kured-node-lock` on the DaemonSet
//! `kube-system/kured`. aks-patch honours it (never reboots while kured holds it) and takes it
//! for the node it reboots, so that kured does not reboot another node beside ours. Our
//! entry's nodeID is `aks-patch:<node>`, never a node name: a kured pod that sees its own
//! node's name in the lock believes it holds it, and would uncordon and release.

use super::error::KubeError;
use crate::retry::with_retry;
use ::kube::api::{Api, PostParams};
use ::kube::Client;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::DaemonSet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

pub const KURED_NAMESPACE: &str = "kube-system";
pub const KURED_DAEMONSET: &str = "kured";
pub const KURED_LOCK_ANNOTATION: &str = "weave.works/kured-node-lock";

/// Why kured's lock could not be read, taken or released.
#[derive(Debug, thiserror::Error)]
pub enum KuredError {
    #[error("kured holds its reboot lock for {holder} (annotation {KURED_LOCK_ANNOTATION} on DaemonSet {KURED_NAMESPACE}/{KURED_DAEMONSET}): it is rebooting that node; wait for it to finish, or pause kured")]
    Held { holder: String },
    #[error("kured's lock annotation on DaemonSet {KURED_NAMESPACE}/{KURED_DAEMONSET} is not in a format aks-patch knows ({detail}); fix or remove the annotation by hand")]
    Unreadable { detail: String },
    #[error("kured's lock kept changing under us (DaemonSet {KURED_NAMESPACE}/{KURED_DAEMONSET} was updated {attempts} times while we tried); retry")]
    Busy { attempts: u32 },
    #[error(transparent)]
    Kube(#[from] KubeError),
}

/// One entry of kured's lock (Go's `LockAnnotationValue`; `TTL` is a Go duration in ns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KuredLockEntry {
    #[serde(rename = "nodeID", default)]
    pub node_id: String,
    #[serde(default)]
    pub metadata: KuredNodeMeta,
    #[serde(default)]
    pub created: Option<Timestamp>,
    #[serde(rename = "TTL", default)]
    pub ttl: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KuredNodeMeta {
    #[serde(default)]
    pub unschedulable: bool,
}

impl KuredLockEntry {
    /// kured's `ttlExpired`: a TTL of 0 never expires.
    pub fn expired(&self, now: Timestamp) -> bool {
        match (self.ttl, self.created) {
            (ttl, Some(created)) if ttl > 0 => now.duration_since(created) >= SignedDuration::from_nanos(ttl),
            _ => false,
        }
    }
}

/// kured's lock annotation, in either of its formats.
#[derive(Debug, Clone, PartialEq)]
pub enum KuredLockValue {
    /// `{"nodeID":..., "metadata":..., "created":..., "TTL":...}` (concurrency 1).
    Single(KuredLockEntry),
    /// `{"maxOwners":N,"locks":[...]}` (`--concurrency` N > 1).
    Multi {
        max_owners: u32,
        locks: Vec<KuredLockEntry>,
    },
}

#[derive(Deserialize)]
struct MultiLock {
    #[serde(rename = "maxOwners")]
    max_owners: u32,
    #[serde(default)]
    locks: Option<Vec<KuredLockEntry>>,
}

impl KuredLockValue {
    pub fn parse(text: &str) -> Result<KuredLockValue, KuredError> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| KuredError::Unreadable {
            detail: format!("not JSON: {e}"),
        })?;
        if v.get("maxOwners").is_some() {
            let m: MultiLock = serde_json::from_value(v).map_err(|e| KuredError::Unreadable {
                detail: format!("multi-owner lock: {e}"),
            })?;
            return Ok(KuredLockValue::Multi {
                max_owners: m.max_owners,
                locks: m.locks.unwrap_or_default(),
            });
        }
        let e: KuredLockEntry = serde_json::from_value(v).map_err(|e| KuredError::Unreadable {
            detail: format!("single lock: {e}"),
        })?;
        Ok(KuredLockValue::Single(e))
    }

    pub fn to_json(&self) -> String {
        match self {
            KuredLockValue::Single(e) => serde_json::to_string(e).unwrap_or_default(),
            KuredLockValue::Multi { max_owners, locks } => {
                serde_json::json!({"maxOwners": max_owners, "locks": locks}).to_string()
            }
        }
    }

    /// The node IDs holding a live lock.
    pub fn live_holders(&self, now: Timestamp) -> Vec<String> {
        let entries: Vec<&KuredLockEntry> = match self {
            KuredLockValue::Single(e) => vec![e],
            KuredLockValue::Multi { locks, .. } => locks.iter().collect(),
        };
        let mut out: Vec<String> = entries
            .into_iter()
            .filter(|e| !e.expired(now))
            .map(|e| e.node_id.clone())
            .collect();
        out.dedup();
        out
    }
}

/// The nodeID aks-patch writes into kured's lock for `node`.
pub fn kured_node_id(node: &str) -> String {
    format!("aks-patch:{node}")
}

/// What [`take_kured_lock`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KuredLock {
    /// No kured DaemonSet in kube-system: nothing to do.
    NotInstalled,
    /// The annotation now says aks-patch holds kured's lock for this node.
    Taken { node_id: String },
}

async fn kured_daemonset(client: &Client) -> Result<Option<DaemonSet>, KuredError> {
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), KURED_NAMESPACE);
    let what = format!("reading DaemonSet {KURED_NAMESPACE}/{KURED_DAEMONSET}");
    Ok(with_retry(&what, || api.get_opt(KURED_DAEMONSET))
        .await
        .map_err(|e| KubeError::api(what, e))?)
}

fn kured_value(ds: &DaemonSet) -> Result<Option<KuredLockValue>, KuredError> {
    match ds
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(KURED_LOCK_ANNOTATION))
        .filter(|v| !v.trim().is_empty())
    {
        None => Ok(None),
        Some(v) => KuredLockValue::parse(v).map(Some),
    }
}

/// kured's `--concurrency` from its DaemonSet's container args (1 if not set).
fn kured_concurrency(ds: &DaemonSet) -> u32 {
    let containers = ds
        .spec
        .template
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    for c in containers {
        let args: Vec<String> = c
            .command
            .unwrap_or_default()
            .into_iter()
            .chain(c.args.unwrap_or_default())
            .collect();
        for (i, a) in args.iter().enumerate() {
            let v = if let Some(v) = a.strip_prefix("--concurrency=") {
                Some(v.to_string())
            } else if a == "--concurrency" {
                args.get(i + 1).cloned()
            } else {
                None
            };
            if let Some(n) = v.and_then(|v| v.parse::<u32>().ok()) {
                return n.max(1);
            }
        }
    }
    1
}

/// Who holds kured's reboot lock now (node names, comma-separated), ignoring expired
/// entries. `None` when kured is not installed or its lock is free.
pub async fn kured_lock_holder(client: &Client) -> Result<Option<String>, KuredError> {
    let Some(ds) = kured_daemonset(client).await? else {
        return Ok(None);
    };
    let Some(v) = kured_value(&ds)? else { return Ok(None) };
    let holders = v.live_holders(Timestamp::now());
    Ok(if holders.is_empty() {
        None
    } else {
        Some(holders.join(","))
    })
}

/// Take kured's lock for `node` so that kured reboots no other node meanwhile. Refused
/// (`KuredError::Held`) while kured holds it. With kured's multi-owner lock every slot is
/// filled with our entry, or kured would take the free ones. `ttl` goes into the entries, so
/// that kured takes the lock back by itself if aks-patch dies without releasing it.
pub async fn take_kured_lock(client: &Client, node: &str, ttl: Duration) -> Result<KuredLock, KuredError> {
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), KURED_NAMESPACE);
    let ours = kured_node_id(node);
    const ATTEMPTS: u32 = 5;
    for _ in 0..ATTEMPTS {
        let Some(mut ds) = kured_daemonset(client).await? else {
            return Ok(KuredLock::NotInstalled);
        };
        let now = Timestamp::now();
        let current = kured_value(&ds)?;
        if let Some(v) = &current {
            let others: Vec<String> = v.live_holders(now).into_iter().filter(|h| *h != ours).collect();
            if !others.is_empty() {
                return Err(KuredError::Held {
                    holder: others.join(","),
                });
            }
        }
        let entry = KuredLockEntry {
            node_id: ours.clone(),
            metadata: KuredNodeMeta { unschedulable: true },
            created: Some(now),
            ttl: ttl.as_nanos().min(i64::MAX as u128) as i64,
        };
        let max_owners = match &current {
            Some(KuredLockValue::Multi { max_owners, .. }) => Some((*max_owners).max(1)),
            Some(KuredLockValue::Single(_)) => None,
            None => Some(kured_concurrency(&ds)).filter(|n| *n > 1),
        };
        let value = match max_owners {
            Some(n) => KuredLockValue::Multi {
                max_owners: n,
                locks: vec![entry; n as usize],
            },
            None => KuredLockValue::Single(entry),
        };
        ds.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(KURED_LOCK_ANNOTATION.into(), value.to_json());
        // Carries the resourceVersion read: a concurrent change (kured taking its lock) is a
        // 409, and so is a retry whose first attempt went through (then read again: ours).
        let what = format!("taking kured's lock (updating DaemonSet {KURED_NAMESPACE}/{KURED_DAEMONSET})");
        let pp = PostParams::default();
        match with_retry(&what, || api.replace(KURED_DAEMONSET, &pp, &ds)).await {
            Ok(_) => return Ok(KuredLock::Taken { node_id: ours }),
            Err(::kube::Error::Api(s)) if s.code == 409 => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
            Err(e) => return Err(KubeError::api(what, e).into()),
        }
    }
    Err(KuredError::Busy { attempts: ATTEMPTS })
}

/// Give kured's lock back: remove our entries (or the single lock, if it is ours). Nothing
/// to do when kured is not installed or the lock is not ours.
pub async fn release_kured_lock(client: &Client, node: &str) -> Result<(), KuredError> {
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), KURED_NAMESPACE);
    let ours = kured_node_id(node);
    const ATTEMPTS: u32 = 5;
    for _ in 0..ATTEMPTS {
        let Some(mut ds) = kured_daemonset(client).await? else {
            return Ok(());
        };
        let Some(current) = kured_value(&ds)? else {
            return Ok(());
        };
        let ann = ds.metadata.annotations.get_or_insert_with(BTreeMap::new);
        match current {
            KuredLockValue::Single(e) => {
                if e.node_id != ours {
                    return Ok(());
                }
                ann.remove(KURED_LOCK_ANNOTATION);
            }
            KuredLockValue::Multi { max_owners, locks } => {
                if !locks.iter().any(|l| l.node_id == ours) {
                    return Ok(());
                }
                let locks = locks.into_iter().filter(|l| l.node_id != ours).collect();
                ann.insert(
                    KURED_LOCK_ANNOTATION.into(),
                    KuredLockValue::Multi { max_owners, locks }.to_json(),
                );
            }
        }
        let what = format!("releasing kured's lock (updating DaemonSet {KURED_NAMESPACE}/{KURED_DAEMONSET})");
        let pp = PostParams::default();
        match with_retry(&what, || api.replace(KURED_DAEMONSET, &pp, &ds)).await {
            Ok(_) => return Ok(()),
            Err(::kube::Error::Api(s)) if s.code == 409 => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
            Err(e) => return Err(KubeError::api(what, e).into()),
        }
    }
    Err(KuredError::Busy { attempts: ATTEMPTS })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kured_single_lock_format() {
        let v = KuredLockValue::parse(
            r#"{"nodeID":"aks-user-1","metadata":{"unschedulable":false},"created":"2025-03-05T10:00:00.123456789Z","TTL":0}"#,
        )
        .unwrap();
        let now = Timestamp::now();
        assert_eq!(v.live_holders(now), vec!["aks-user-1".to_string()]);
        // A TTL (Go duration, ns) that has run out frees the lock.
        let v = KuredLockValue::parse(
            r#"{"nodeID":"aks-user-1","metadata":{"unschedulable":false},"created":"2025-03-05T10:00:00Z","TTL":60000000000}"#,
        )
        .unwrap();
        assert!(v.live_holders(now).is_empty());
        // Round trip keeps kured's field names.
        let j: serde_json::Value = serde_json::from_str(&v.to_json()).unwrap();
        assert_eq!(j["nodeID"], "aks-user-1");
        assert_eq!(j["TTL"], 60_000_000_000i64);
        assert_eq!(j["metadata"]["unschedulable"], false);
        assert_eq!(j["created"], "2025-03-05T10:00:00Z", "RFC 3339, as kured writes it");
    }

    #[test]
    fn kured_multi_lock_format() {
        let now = Timestamp::now();
        let fresh = now.to_string();
        let text = format!(
            r#"{{"maxOwners":2,"locks":[{{"nodeID":"n1","metadata":{{"unschedulable":true}},"created":"{fresh}","TTL":0}},{{"nodeID":"n2","created":"2020-01-01T00:00:00Z","TTL":1000000000}}]}}"#
        );
        let v = KuredLockValue::parse(&text).unwrap();
        assert!(matches!(v, KuredLockValue::Multi { max_owners: 2, .. }));
        assert_eq!(v.live_holders(now), vec!["n1".to_string()]);
        let empty = KuredLockValue::parse(r#"{"maxOwners":3,"locks":null}"#).unwrap();
        assert!(empty.live_holders(now).is_empty());
        assert!(matches!(
            KuredLockValue::parse("not json"),
            Err(KuredError::Unreadable { .. })
        ));
    }

    #[test]
    fn kured_concurrency_from_args() {
        let ds: DaemonSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kured", "namespace": "kube-system"},
            "spec": {"selector": {}, "template": {"spec": {"containers": [
                {"name": "kured", "command": ["/usr/bin/kured"], "args": ["--period=1h", "--concurrency=3"]}
            ]}}}
        }))
        .unwrap();
        assert_eq!(kured_concurrency(&ds), 3);
        let ds: DaemonSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kured"},
            "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "kured", "args": ["--concurrency", "2"]}]}}}
        }))
        .unwrap();
        assert_eq!(kured_concurrency(&ds), 2);
        let ds: DaemonSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kured"},
            "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "kured"}]}}}
        }))
        .unwrap();
        assert_eq!(kured_concurrency(&ds), 1);
    }

    #[test]
    fn our_kured_id_is_never_a_node_name() {
        assert_eq!(kured_node_id("aks-user-1"), "aks-patch:aks-user-1");
    }
}
