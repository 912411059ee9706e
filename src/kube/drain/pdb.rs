//! PodDisruptionBudgets: what a budget allows, which pods it covers, and waiting for it to
//! allow disruptions again.

use super::super::error::KubeError;
use super::super::objects::ObjectRef;
use super::types::PodRef;
use crate::retry::with_retry;
use ::kube::api::Api;
use ::kube::Client;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// A PodDisruptionBudget covering pods that the drain evicts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PdbInfo {
    pub namespace: String,
    pub name: String,
    pub disruptions_allowed: i32,
    pub current_healthy: i32,
    pub desired_healthy: i32,
    pub expected_pods: i32,
    /// The pods of this drain that it covers.
    pub pods: Vec<PodRef>,
    /// Why, as configured, this budget can never allow a disruption (`maxUnavailable: 0`,
    /// `minAvailable: 100%`, or `minAvailable` at least the pods it covers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub never_allows: Option<String>,
}

impl PdbInfo {
    /// Allows disruptions again (or has every pod it expects healthy).
    pub fn healthy(&self) -> bool {
        self.disruptions_allowed > 0 || (self.expected_pods > 0 && self.current_healthy >= self.expected_pods)
    }

    pub(super) fn from_pdb(pdb: &PodDisruptionBudget, pods: Vec<PodRef>) -> PdbInfo {
        let st = pdb.status.as_ref();
        PdbInfo {
            namespace: pdb.metadata.namespace.clone().unwrap_or_default(),
            name: pdb.metadata.name.clone().unwrap_or_default(),
            disruptions_allowed: st.and_then(|s| s.disruptions_allowed).unwrap_or(0),
            current_healthy: st.and_then(|s| s.current_healthy).unwrap_or(0),
            desired_healthy: st.and_then(|s| s.desired_healthy).unwrap_or(0),
            expected_pods: st.and_then(|s| s.expected_pods).unwrap_or(0),
            pods,
            never_allows: never_allows(pdb),
        }
    }
}

/// Why `pdb`, as configured, can never allow a voluntary disruption, if it cannot.
pub fn never_allows(pdb: &PodDisruptionBudget) -> Option<String> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let spec = pdb.spec.as_ref()?;
    let expected = pdb.status.as_ref().and_then(|s| s.expected_pods).unwrap_or(0);
    let pct = |s: &str| s.trim().trim_end_matches('%').trim().parse::<f64>().ok();
    match (&spec.max_unavailable, &spec.min_available) {
        (Some(IntOrString::Int(0)), _) => Some("maxUnavailable is 0".into()),
        (Some(IntOrString::String(s)), _) if pct(s) == Some(0.0) => Some(format!("maxUnavailable is {s}")),
        (None, Some(IntOrString::String(s))) if pct(s).is_some_and(|p| p >= 100.0) => {
            Some(format!("minAvailable is {s}"))
        }
        (None, Some(IntOrString::Int(n))) if expected > 0 && *n >= expected => {
            Some(format!("minAvailable is {n} and it covers {expected} pod(s)"))
        }
        _ => None,
    }
}

impl fmt::Display for PdbInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PodDisruptionBudget {}/{} (allows {} disruption(s); {} of {} pods healthy, {} needed)",
            self.namespace,
            self.name,
            self.disruptions_allowed,
            self.current_healthy,
            self.expected_pods,
            self.desired_healthy
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PdbWaitError {
    #[error("PodDisruptionBudgets still allow no disruption after {}s: {}; check their pods (kubectl get pdb -A) before patching the next node", .timeout.as_secs(), .unhealthy.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Timeout { timeout: Duration, unhealthy: Vec<PdbInfo> },
    #[error(transparent)]
    Kube(#[from] KubeError),
}

// ---------------------------------------------------------------------------------------
// Between nodes

/// Wait until each PDB allows disruptions again (`disruptionsAllowed > 0`, or every pod it
/// expects is healthy). A PDB that no longer exists counts as healthy.
pub async fn wait_pdbs_healthy(client: &Client, pdbs: &[ObjectRef], timeout: Duration) -> Result<(), PdbWaitError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut unhealthy = vec![];
        for pdb in pdbs {
            let api: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &pdb.namespace);
            let what = format!("reading PodDisruptionBudget {pdb}");
            let p = with_retry(&what, || api.get_opt(&pdb.name))
                .await
                .map_err(|e| KubeError::api(what, e))?;
            if let Some(p) = p {
                let info = PdbInfo::from_pdb(&p, vec![]);
                if !info.healthy() {
                    unhealthy.push(info);
                }
            }
        }
        if unhealthy.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(PdbWaitError::Timeout { timeout, unhealthy });
        }
        tokio::time::sleep_until((tokio::time::Instant::now() + Duration::from_secs(2)).min(deadline)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdbs_that_can_never_allow_a_disruption() {
        use k8s_openapi::api::policy::v1::{PodDisruptionBudgetSpec, PodDisruptionBudgetStatus};
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        let pdb = |max: Option<IntOrString>, min: Option<IntOrString>, expected: i32| PodDisruptionBudget {
            spec: Some(PodDisruptionBudgetSpec {
                max_unavailable: max,
                min_available: min,
                ..Default::default()
            }),
            status: Some(PodDisruptionBudgetStatus {
                expected_pods: Some(expected),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            never_allows(&pdb(Some(IntOrString::Int(0)), None, 3)).as_deref(),
            Some("maxUnavailable is 0")
        );
        assert!(never_allows(&pdb(Some(IntOrString::String("0%".into())), None, 3)).is_some());
        assert!(never_allows(&pdb(None, Some(IntOrString::String("100%".into())), 3)).is_some());
        assert!(never_allows(&pdb(None, Some(IntOrString::Int(3)), 3)).is_some());
        assert!(never_allows(&pdb(None, Some(IntOrString::Int(2)), 3)).is_none());
        assert!(never_allows(&pdb(Some(IntOrString::Int(1)), None, 3)).is_none());
        assert!(never_allows(&pdb(None, Some(IntOrString::String("50%".into())), 3)).is_none());
    }

    #[test]
    fn pdb_health() {
        let mut i = PdbInfo {
            namespace: "a".into(),
            name: "b".into(),
            disruptions_allowed: 0,
            current_healthy: 2,
            desired_healthy: 2,
            expected_pods: 3,
            pods: vec![],
            never_allows: None,
        };
        assert!(!i.healthy());
        i.current_healthy = 3;
        assert!(i.healthy(), "every expected pod healthy");
        i.current_healthy = 2;
        i.disruptions_allowed = 1;
        assert!(i.healthy());
    }
}
