//! What the API server and the cluster's actors (controllers, kubelets, the node image
//! upgrade) share about Kubernetes objects: `Status` errors, label and field selectors,
//! pod facts and graceful deletion, and the eviction policy.

pub mod eviction;
pub mod jobs;
pub mod pods;
pub mod selector;
pub mod status;
