//! Run records kept in the cluster: one ConfigMap per run, for aks-patch running in a pod
//! (whose file system dies with it). This module stores and lists the records' text; what
//! a record says is the rollout's ([`crate::rollout::journal`]).
//!
//! - The ConfigMap is `aks-patch-run-<run id>` in the namespace given (the pod's own),
//!   labelled [`RECORD_LABEL`]`=<cluster>` so that the runs of one cluster are listed with a
//!   label selector, the cluster's whole key and the run id in annotations.
//! - Writes are optimistic: a record is created (a name taken already is a conflict), then
//!   replaced with the `resourceVersion` this process last read or wrote. A write that lost
//!   a race with another writer is refused ([`RecordObjectError::Conflict`]) rather than
//!   overwriting it; a retried write whose first attempt had landed is recognised (the
//!   stored text is the one being written) and is not a conflict.
//! - A ConfigMap holds at most 1 MiB ([`MAX_DATA`]). A record larger than that (thousands
//!   of nodes, long upgrade outputs) is stored gzip-compressed in `binaryData`
//!   ([`COMPRESSED_KEY`]); one that does not fit even so is refused before anything is sent
//!   ([`RecordObjectError::TooLarge`]), and the run stops as on a full disk.

use super::error::KubeError;
use super::objects::ObjectRef;
use crate::retry::with_retry;
use ::kube::api::{Api, ListParams, PostParams};
use ::kube::Client;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::ByteString;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// The label every run record carries; its value names the cluster ([`cluster_label`]).
pub const RECORD_LABEL: &str = "aks-patch.io/run-record";
/// The annotation with the cluster's whole key (the label's value may be a digest of it).
pub const CLUSTER_ANNOTATION: &str = "aks-patch.io/cluster";
/// The annotation with the run id.
pub const RUN_ANNOTATION: &str = "aks-patch.io/run-id";
/// The record as JSON text, in `data`.
pub const TEXT_KEY: &str = "run.json";
/// The record gzip-compressed, in `binaryData`, when the text does not fit.
pub const COMPRESSED_KEY: &str = "run.json.gz";
/// What the API server lets a ConfigMap hold: its keys and values together.
pub const MAX_DATA: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RecordObjectError {
    #[error("the run record is {size} bytes, and {compressed} compressed; a ConfigMap holds at most {MAX_DATA}")]
    TooLarge { size: usize, compressed: usize },
    #[error("ConfigMap {object} was changed by another writer since this run last wrote it (resourceVersion {expected}); it is not overwritten")]
    Conflict { object: ObjectRef, expected: String },
    #[error("ConfigMap {object} holds no run record ({TEXT_KEY} or {COMPRESSED_KEY})")]
    Empty { object: ObjectRef },
    #[error("ConfigMap {object}'s {COMPRESSED_KEY} cannot be decompressed")]
    Compression {
        object: ObjectRef,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Api(#[from] KubeError),
}

impl RecordObjectError {
    /// The Kubernetes API's own error, when that is what failed.
    pub fn api(&self) -> Option<&KubeError> {
        match self {
            RecordObjectError::Api(e) => Some(e),
            _ => None,
        }
    }
}

/// A run record as stored: its object and its text.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub object: ObjectRef,
    pub text: Vec<u8>,
}

/// The run records of a namespace.
pub struct RecordObjects {
    api: Api<ConfigMap>,
    namespace: String,
    /// The resourceVersion each record had when this process last read or wrote it.
    versions: Mutex<HashMap<String, String>>,
}

impl RecordObjects {
    pub fn new(client: Client, namespace: &str) -> RecordObjects {
        RecordObjects {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            versions: Mutex::new(HashMap::new()),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The object that holds run `run_id`'s record.
    pub fn object_of(&self, run_id: &str) -> ObjectRef {
        ObjectRef {
            namespace: self.namespace.clone(),
            name: object_name(run_id),
        }
    }

    /// Write run `run_id`'s record of `cluster` (its key): created the first time, then
    /// replaced if no one else changed it since.
    pub async fn save(&self, cluster: &str, run_id: &str, text: &[u8]) -> Result<ObjectRef, RecordObjectError> {
        let object = self.object_of(run_id);
        let mut cm = ConfigMap {
            metadata: ::kube::api::ObjectMeta {
                name: Some(object.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(BTreeMap::from([
                    (RECORD_LABEL.to_string(), cluster_label(cluster)),
                    ("app.kubernetes.io/managed-by".to_string(), "aks-patch".to_string()),
                ])),
                annotations: Some(BTreeMap::from([
                    (CLUSTER_ANNOTATION.to_string(), cluster.to_string()),
                    (RUN_ANNOTATION.to_string(), run_id.to_string()),
                ])),
                ..Default::default()
            },
            ..Default::default()
        };
        fill(&mut cm, text)?;
        let known = self.versions().get(&object.name).cloned();
        let pp = PostParams::default();
        let written = match &known {
            None => with_retry(&format!("creating ConfigMap {object}"), || self.api.create(&pp, &cm)).await,
            Some(rv) => {
                cm.metadata.resource_version = Some(rv.clone());
                with_retry(&format!("replacing ConfigMap {object}"), || {
                    self.api.replace(&object.name, &pp, &cm)
                })
                .await
            }
        };
        let stored = match written {
            Ok(stored) => stored,
            Err(e) if super::error::status_code(&e) == Some(409) => {
                // A retried write whose first attempt landed, or another writer.
                let now = self
                    .api
                    .get(&object.name)
                    .await
                    .map_err(|e| KubeError::api(format!("reading ConfigMap {object}"), e))?;
                if record_text(&now, &object).ok().as_deref() != Some(text) {
                    return Err(RecordObjectError::Conflict {
                        object,
                        expected: known.unwrap_or_else(|| "none: it was to be created".into()),
                    });
                }
                now
            }
            Err(e) => return Err(KubeError::api(format!("writing ConfigMap {object}"), e).into()),
        };
        if let Some(rv) = stored.metadata.resource_version {
            self.versions().insert(object.name.clone(), rv);
        }
        Ok(object)
    }

    /// The records of `cluster` (its key), oldest run first.
    pub async fn list(&self, cluster: &str) -> Result<Vec<StoredRecord>, RecordObjectError> {
        let lp = ListParams::default().labels(&format!("{RECORD_LABEL}={}", cluster_label(cluster)));
        let what = format!("listing run records (ConfigMaps) in namespace {}", self.namespace);
        let mut items = super::list::list_all(&self.api, &lp, &what).await?;
        // The label may be a digest: keep the cluster's own records.
        items.retain(|cm| {
            cm.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CLUSTER_ANNOTATION))
                .is_none_or(|c| c == cluster)
        });
        // Run ids begin with their UTC start time: their order is the runs'.
        let run_id = |cm: &ConfigMap| {
            cm.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(RUN_ANNOTATION).cloned())
                .unwrap_or_else(|| cm.metadata.name.clone().unwrap_or_default())
        };
        items.sort_by_key(run_id);
        let mut out = Vec::with_capacity(items.len());
        for cm in items {
            let object = ObjectRef {
                namespace: self.namespace.clone(),
                name: cm.metadata.name.clone().unwrap_or_default(),
            };
            let text = record_text(&cm, &object)?;
            if let Some(rv) = &cm.metadata.resource_version {
                self.versions().insert(object.name.clone(), rv.clone());
            }
            out.push(StoredRecord { object, text });
        }
        Ok(out)
    }

    fn versions(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.versions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The ConfigMap's name for run `run_id` (run ids are `20261207T013000Z-1a2b`: lowercased,
/// a valid object name).
pub fn object_name(run_id: &str) -> String {
    let id: String = run_id
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' })
        .collect();
    format!("aks-patch-run-{}", id.trim_matches('-'))
}

/// The label value for a cluster key: the key itself when it is a valid label value, else a
/// digest of it (FNV-1a, stable across builds), so any key can be selected on.
pub fn cluster_label(key: &str) -> String {
    let valid = !key.is_empty()
        && key.len() <= 63
        && key.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && key.starts_with(|c: char| c.is_ascii_alphanumeric())
        && key.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        return key.to_string();
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("fnv-{h:016x}")
}

/// Put `text` into the ConfigMap: as text when it fits, else compressed, else refused.
fn fill(cm: &mut ConfigMap, text: &[u8]) -> Result<(), RecordObjectError> {
    if TEXT_KEY.len() + text.len() <= MAX_DATA {
        if let Ok(s) = std::str::from_utf8(text) {
            cm.data = Some(BTreeMap::from([(TEXT_KEY.to_string(), s.to_string())]));
            return Ok(());
        }
    }
    let compressed = gzip(text);
    if COMPRESSED_KEY.len() + compressed.len() > MAX_DATA {
        return Err(RecordObjectError::TooLarge {
            size: text.len(),
            compressed: compressed.len(),
        });
    }
    cm.binary_data = Some(BTreeMap::from([(COMPRESSED_KEY.to_string(), ByteString(compressed))]));
    Ok(())
}

fn gzip(text: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(text).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

/// The record a ConfigMap holds.
fn record_text(cm: &ConfigMap, object: &ObjectRef) -> Result<Vec<u8>, RecordObjectError> {
    if let Some(t) = cm.data.as_ref().and_then(|d| d.get(TEXT_KEY)) {
        return Ok(t.as_bytes().to_vec());
    }
    let Some(z) = cm.binary_data.as_ref().and_then(|d| d.get(COMPRESSED_KEY)) else {
        return Err(RecordObjectError::Empty { object: object.clone() });
    };
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&z.0[..]), &mut out).map_err(|source| {
        RecordObjectError::Compression {
            object: object.clone(),
            source,
        }
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object() -> ObjectRef {
        ObjectRef {
            namespace: "aks-patch".into(),
            name: "aks-patch-run-x".into(),
        }
    }

    #[test]
    fn a_record_that_fits_is_stored_as_text() {
        let mut cm = ConfigMap::default();
        fill(&mut cm, br#"{"runId":"r"}"#).unwrap();
        assert_eq!(cm.data.as_ref().unwrap()[TEXT_KEY], r#"{"runId":"r"}"#);
        assert!(cm.binary_data.is_none());
        assert_eq!(record_text(&cm, &object()).unwrap(), br#"{"runId":"r"}"#);
    }

    #[test]
    fn a_record_over_a_mebibyte_is_stored_compressed_and_reads_back_whole() {
        // The shape of a large cluster's record: many nodes, much alike.
        let nodes: Vec<String> = (0..12000)
            .map(|i| format!(r#"{{"name":"aks-user-{i:05}-vmss","state":"done","steps":["probe","upgrade","cordon","drain","reboot"]}}"#))
            .collect();
        let text = format!(r#"{{"nodes":[{}]}}"#, nodes.join(",")).into_bytes();
        assert!(text.len() > MAX_DATA, "the test needs a record over the limit");
        let mut cm = ConfigMap::default();
        fill(&mut cm, &text).unwrap();
        assert!(cm.data.is_none());
        let stored = &cm.binary_data.as_ref().unwrap()[COMPRESSED_KEY].0;
        assert!(stored.len() <= MAX_DATA);
        assert_eq!(record_text(&cm, &object()).unwrap(), text);
    }

    #[test]
    fn a_record_that_fits_not_even_compressed_is_refused_before_anything_is_sent() {
        // Random bytes do not compress (nor are they text).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let text: Vec<u8> = (0..MAX_DATA + 10)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let mut cm = ConfigMap::default();
        match fill(&mut cm, &text) {
            Err(e @ RecordObjectError::TooLarge { .. }) => {
                assert!(e.to_string().contains("at most 1048576"), "{e}")
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert!(cm.data.is_none() && cm.binary_data.is_none());
    }

    #[test]
    fn names_and_labels_are_what_the_api_server_accepts() {
        assert_eq!(
            object_name("20261207T013000Z-1a2b"),
            "aks-patch-run-20261207t013000z-1a2b"
        );
        assert_eq!(
            cluster_label("in-cluster_https___10.0.0.1"),
            "in-cluster_https___10.0.0.1"
        );
        let long = "kubeconfig_".to_string() + &"x".repeat(80);
        let l = cluster_label(&long);
        assert_eq!(l.len(), 20);
        assert_eq!(l, cluster_label(&long), "stable");
        assert_ne!(l, cluster_label(&(long.clone() + "y")));
        assert!(cluster_label("ends_with_").starts_with("fnv-"));
    }
}
