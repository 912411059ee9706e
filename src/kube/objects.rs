//! References to Kubernetes objects, as the drain and the scheduler check name them, and as
//! the run record keeps them.

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A pod, by namespace, name and UID.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl PodRef {
    pub fn of(pod: &Pod) -> PodRef {
        PodRef {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        }
    }
}

impl fmt::Display for PodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A namespaced object (a PodDisruptionBudget; a pod in the run record): `namespace/name` in
/// messages. Records of 0.1.0 wrote the `namespace/name` string; it still reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ObjectRef {
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> ObjectRef {
        ObjectRef {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl<'de> Deserialize<'de> for ObjectRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ObjectRef, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Object { namespace: String, name: String },
            Text(String),
        }
        match Repr::deserialize(d)? {
            Repr::Object { namespace, name } => Ok(ObjectRef { namespace, name }),
            Repr::Text(t) => match t.split_once('/') {
                Some((ns, n)) => Ok(ObjectRef::new(ns, n)),
                None => Err(serde::de::Error::custom(format!("`{t}` is not namespace/name"))),
            },
        }
    }
}
