//! What the identity aks-patch signs in as may do, asked before a rollout changes anything
//! (`SelfSubjectAccessReview`, what `kubectl auth can-i` asks). A permission missing for a
//! step in the middle of a rollout (an eviction, the Lease renewal) would otherwise stop the
//! run half-way; asked up front, it is a refusal before the first change.
//!
//! Every authenticated user may create self reviews; the answer comes from the cluster's
//! authorizers (Kubernetes RBAC, and Azure RBAC for Kubernetes on Entra ID clusters).

use super::error::KubeError;
use crate::retry::with_retry;
use ::kube::api::{Api, PostParams};
use ::kube::Client;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
use std::fmt;

/// One permission a step needs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Need {
    pub verb: &'static str,
    /// API group ("" for core).
    pub group: &'static str,
    pub resource: &'static str,
    pub subresource: &'static str,
    /// "" for cluster-scoped resources (or all namespaces).
    pub namespace: String,
    /// "" for any name.
    pub name: &'static str,
}

impl Need {
    pub fn cluster(verb: &'static str, group: &'static str, resource: &'static str) -> Need {
        Need {
            verb,
            group,
            resource,
            subresource: "",
            namespace: String::new(),
            name: "",
        }
    }

    pub fn namespaced(verb: &'static str, group: &'static str, resource: &'static str, namespace: &str) -> Need {
        Need {
            namespace: namespace.to_string(),
            ..Need::cluster(verb, group, resource)
        }
    }

    pub fn subresource(mut self, sub: &'static str) -> Need {
        self.subresource = sub;
        self
    }

    pub fn named(mut self, name: &'static str) -> Need {
        self.name = name;
        self
    }
}

impl fmt::Display for Need {
    /// `create pods/eviction in namespace app`, `patch nodes`, `update leases.coordination.k8s.io kube-system/aks-patch`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.verb, self.resource)?;
        if !self.group.is_empty() {
            write!(f, ".{}", self.group)?;
        }
        if !self.subresource.is_empty() {
            write!(f, "/{}", self.subresource)?;
        }
        match (self.namespace.is_empty(), self.name.is_empty()) {
            (true, true) => Ok(()),
            (true, false) => write!(f, " {}", self.name),
            (false, true) => write!(f, " in namespace {}", self.namespace),
            (false, false) => write!(f, " {}/{}", self.namespace, self.name),
        }
    }
}

/// The needs the cluster refuses, each with the authorizer's reason when it gave one.
pub async fn denied(client: &Client, needs: &[Need]) -> Result<Vec<(Need, String)>, KubeError> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let pp = PostParams::default();
    let mut out = vec![];
    for need in needs {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(need.verb.to_string()),
                    group: Some(need.group.to_string()),
                    resource: Some(need.resource.to_string()),
                    subresource: Some(need.subresource.to_string()).filter(|s| !s.is_empty()),
                    namespace: Some(need.namespace.clone()).filter(|s| !s.is_empty()),
                    name: Some(need.name.to_string()).filter(|s| !s.is_empty()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let what = format!("asking whether this identity may {need} (SelfSubjectAccessReview)");
        let answer = with_retry(&what, || api.create(&pp, &review))
            .await
            .map_err(|e| KubeError::api(what.clone(), e))?;
        let status = answer.status.unwrap_or_default();
        if !status.allowed {
            out.push((need.clone(), status.reason.unwrap_or_default()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_in_words() {
        assert_eq!(Need::cluster("patch", "", "nodes").to_string(), "patch nodes");
        assert_eq!(
            Need::namespaced("create", "", "pods", "app")
                .subresource("eviction")
                .to_string(),
            "create pods/eviction in namespace app"
        );
        assert_eq!(
            Need::namespaced("update", "coordination.k8s.io", "leases", "kube-system")
                .named("aks-patch")
                .to_string(),
            "update leases.coordination.k8s.io kube-system/aks-patch"
        );
    }
}
