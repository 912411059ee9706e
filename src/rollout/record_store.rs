//! Where the run records are kept: files ([`Journal`], the default on a workstation or a
//! runner) or the cluster (one ConfigMap per run, [`ClusterJournal`], the default in a pod,
//! whose file system dies with it). Both are written at the same moments (before every side
//! effect, through [`RecordStore`]), read the same way (`--resume`, `report`, the windows'
//! past node times) and hold the same JSON.

use super::journal::{self, parse_record, Journal, JournalError, RunRecord};
use super::ports::RecordStore;
use crate::kube::run_records::RecordObjects;
use crate::kube::ObjectRef;
use std::collections::BTreeMap;
use std::path::Path;

/// Where a run's record is kept (`--run-record`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordPlace {
    /// A file per run under the journal directory.
    File,
    /// A ConfigMap per run in the namespace aks-patch runs in.
    Cluster,
}

/// The run records of one place.
pub enum RunRecords {
    Files(Journal),
    Cluster(Box<ClusterJournal>),
}

/// Run records as ConfigMaps, one per run ([`crate::kube::run_records`]).
pub struct ClusterJournal {
    objects: RecordObjects,
}

impl ClusterJournal {
    pub fn new(client: ::kube::Client, namespace: &str) -> ClusterJournal {
        ClusterJournal {
            objects: RecordObjects::new(client, namespace),
        }
    }

    pub fn namespace(&self) -> &str {
        self.objects.namespace()
    }

    /// Write the record (compact JSON), refusing to overwrite another writer's.
    pub async fn save(&self, rec: &RunRecord) -> Result<ObjectRef, JournalError> {
        let text = serde_json::to_vec(rec).expect("run record serializes");
        self.objects
            .save(&rec.cluster.key, &rec.run_id, &text)
            .await
            .map_err(|source| JournalError::ClusterWrite {
                object: self.objects.object_of(&rec.run_id),
                source: Box::new(source),
            })
    }

    /// The records of the cluster `key`, oldest first.
    pub async fn runs(&self, key: &str) -> Result<Vec<RunRecord>, JournalError> {
        let stored = self
            .objects
            .list(key)
            .await
            .map_err(|source| JournalError::ClusterRead {
                namespace: self.namespace().to_string(),
                source: Box::new(source),
            })?;
        stored
            .iter()
            .map(|s| parse_record(Path::new(&format!("ConfigMap {}", s.object)), &s.text))
            .collect()
    }
}

impl RunRecords {
    /// What keeping the records here asks of the API server (nothing, for files): checked in
    /// the pre-flight, so that a run never starts that could not write its record.
    pub fn needs(&self) -> Vec<crate::kube::access::Need> {
        use crate::kube::access::Need;
        match self {
            RunRecords::Files(_) => vec![],
            RunRecords::Cluster(c) => ["get", "list", "create", "update"]
                .into_iter()
                .map(|verb| Need::namespaced(verb, "", "configmaps", c.namespace()))
                .collect(),
        }
    }

    pub fn place(&self) -> RecordPlace {
        match self {
            RunRecords::Files(_) => RecordPlace::File,
            RunRecords::Cluster(_) => RecordPlace::Cluster,
        }
    }

    /// Where the records are, in words: the directory, or the namespace's ConfigMaps.
    pub fn describe(&self) -> String {
        match self {
            RunRecords::Files(j) => j.dir().display().to_string(),
            RunRecords::Cluster(c) => format!(
                "ConfigMaps in namespace {} (kubectl get configmaps -n {} -l {})",
                c.namespace(),
                c.namespace(),
                crate::kube::run_records::RECORD_LABEL
            ),
        }
    }

    /// Where `rec` is kept, in words.
    pub fn location_of(&self, rec: &RunRecord) -> String {
        match self {
            RunRecords::Files(j) => j.path_of(rec).display().to_string(),
            RunRecords::Cluster(c) => format!("ConfigMap {}", c.objects.object_of(&rec.run_id)),
        }
    }

    /// Write `rec`; where it went, in words.
    pub async fn save(&self, rec: &RunRecord) -> Result<String, JournalError> {
        match self {
            RunRecords::Files(j) => j.save(rec).map(|p| p.display().to_string()),
            RunRecords::Cluster(c) => c.save(rec).await.map(|o| format!("ConfigMap {o}")),
        }
    }

    /// The records of the cluster `key`, oldest first.
    pub async fn runs(&self, key: &str) -> Result<Vec<RunRecord>, JournalError> {
        match self {
            RunRecords::Files(j) => j.runs(key),
            RunRecords::Cluster(c) => c.runs(key).await,
        }
    }

    /// The newest record of the cluster `key`.
    pub async fn latest(&self, key: &str) -> Result<Option<RunRecord>, JournalError> {
        Ok(self.runs(key).await?.pop())
    }

    /// When each node of the cluster `key` was last patched.
    pub async fn last_patched(&self, key: &str) -> Result<BTreeMap<String, String>, JournalError> {
        Ok(journal::last_patched(self.runs(key).await?))
    }
}

impl RecordStore for RunRecords {
    /// The engine writes between steps, synchronously. The ConfigMap is written on this
    /// runtime's worker thread, which the runtime lets block meanwhile (aks-patch runs on the
    /// multi-threaded runtime): the next side effect waits for the write, as it does for a
    /// file's fsync.
    fn save(&self, rec: &RunRecord) -> Result<(), JournalError> {
        match self {
            RunRecords::Files(j) => j.save(rec).map(|_| ()),
            RunRecords::Cluster(c) => {
                let handle = tokio::runtime::Handle::current();
                tokio::task::block_in_place(|| handle.block_on(c.save(rec))).map(|_| ())
            }
        }
    }
}
