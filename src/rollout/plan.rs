//! The rollout plan: which nodes, in which order, and which are skipped and why.
//! Order: pool by pool as the cluster lists its pools, nodes by name within a pool.

use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("no node named {0} in the cluster")]
    UnknownNode(String),
    #[error("no node pool named {0} in the cluster (pools: {1})")]
    UnknownPool(String, String),
    #[error("invalid label selector `{0}`: {1}")]
    Selector(String, String),
}

/// What the plan needs to know about a node.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub name: String,
    pub pool: String,
    /// `linux` or `windows` (label kubernetes.io/os).
    pub os_type: String,
    /// Ubuntu, AzureLinux, Windows2022... (label kubernetes.azure.com/os-sku or the pool's osSKU).
    pub os_sku: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub ready: bool,
    /// The pool has securityProfile.sshAccess = Disabled.
    pub ssh_disabled: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub nodepools: Vec<String>,
    pub nodes: Vec<String>,
    pub selector: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlanEntry {
    pub name: String,
    pub pool: String,
    /// `patch` or `skip`.
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl PlanEntry {
    pub fn patch(&self) -> bool {
        self.action == "patch"
    }
}

/// Why a node cannot be patched in place, if it cannot.
pub fn unpatchable_reason(c: &Candidate, cluster_hint: &str) -> Option<String> {
    if c.os_type.eq_ignore_ascii_case("windows") {
        return Some(format!(
            "Windows: not patched in place; use az aks nodepool upgrade {cluster_hint} -n {} --node-image-only",
            c.pool
        ));
    }
    if let Some(sku) = &c.os_sku {
        if sku.eq_ignore_ascii_case("AzureLinux")
            || sku.eq_ignore_ascii_case("CBLMariner")
            || sku.eq_ignore_ascii_case("Mariner")
        {
            return Some(format!(
                "Azure Linux: aks-patch patches Ubuntu (apt) only; use az aks nodepool upgrade {cluster_hint} -n {} --node-image-only",
                c.pool
            ));
        }
    }
    if c.ssh_disabled {
        return Some(format!(
            "SSH is disabled on pool {} (securityProfile.sshAccess=Disabled): use a node image upgrade instead",
            c.pool
        ));
    }
    None
}

/// Order and filter the nodes. `pool_order` is the cluster's pool order (ARM's, or first
/// appearance); nodes of unknown pools come last.
pub fn plan(
    candidates: &[Candidate],
    pool_order: &[String],
    filters: &Filters,
    cluster_hint: &str,
) -> Result<Vec<PlanEntry>, PlanError> {
    let selector = filters
        .selector
        .as_deref()
        .map(|s| Selector::parse(s).map_err(|e| PlanError::Selector(s.to_string(), e)))
        .transpose()?;
    for n in &filters.nodes {
        if !candidates.iter().any(|c| &c.name == n) {
            return Err(PlanError::UnknownNode(n.clone()));
        }
    }
    let mut pools: Vec<String> = pool_order.to_vec();
    for c in candidates {
        if !pools.contains(&c.pool) {
            pools.push(c.pool.clone());
        }
    }
    for p in &filters.nodepools {
        if !pools.contains(p) {
            return Err(PlanError::UnknownPool(p.clone(), pools.join(", ")));
        }
    }
    let mut chosen: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| filters.nodepools.is_empty() || filters.nodepools.contains(&c.pool))
        .filter(|c| filters.nodes.is_empty() || filters.nodes.contains(&c.name))
        .filter(|c| selector.as_ref().is_none_or(|s| s.matches(&c.labels)))
        .collect();
    chosen.sort_by_key(|c| {
        (
            pools.iter().position(|p| p == &c.pool).unwrap_or(usize::MAX),
            c.name.clone(),
        )
    });
    Ok(chosen
        .into_iter()
        .map(|c| {
            let reason = unpatchable_reason(c, cluster_hint).or_else(|| {
                (!c.ready).then(|| {
                    "node is not Ready: aks-patch does not take out a node that is already unhealthy; fix it first"
                        .to_string()
                })
            });
            PlanEntry {
                name: c.name.clone(),
                pool: c.pool.clone(),
                action: if reason.is_some() { "skip" } else { "patch" }.to_string(),
                reason,
            }
        })
        .collect())
}

/// A Kubernetes label selector (equality and set-based), as `-l` takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector(Vec<Req>);

#[derive(Debug, Clone, PartialEq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl Selector {
    pub fn parse(s: &str) -> Result<Selector, String> {
        let mut reqs = vec![];
        for part in split_top(s) {
            let part = part.trim();
            if part.is_empty() {
                return Err("empty requirement".into());
            }
            let valid_key =
                |k: &str| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
            let req = if let Some(k) = part.strip_prefix('!') {
                Req::NotExists(k.trim().to_string())
            } else if let Some((k, v)) = part.split_once("!=") {
                Req::NotEq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==") {
                Req::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once('=') {
                Req::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                Req::NotIn(k.trim().into(), set_values(rest)?)
            } else if let Some((k, rest)) = part.split_once(" in ") {
                Req::In(k.trim().into(), set_values(rest)?)
            } else {
                Req::Exists(part.to_string())
            };
            let key = match &req {
                Req::Eq(k, _)
                | Req::NotEq(k, _)
                | Req::In(k, _)
                | Req::NotIn(k, _)
                | Req::Exists(k)
                | Req::NotExists(k) => k,
            };
            if !valid_key(key) {
                return Err(format!("`{key}` is not a label key"));
            }
            reqs.push(req);
        }
        Ok(Selector(reqs))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => labels.get(k) == Some(v),
            Req::NotEq(k, v) => labels.get(k) != Some(v),
            Req::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Req::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Req::Exists(k) => labels.contains_key(k),
            Req::NotExists(k) => !labels.contains_key(k),
        })
    }
}

fn set_values(rest: &str) -> Result<Vec<String>, String> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("expected (a,b) after in/notin, got `{rest}`"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

/// Split on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<String> {
    let mut out = vec![];
    let mut depth = 0i32;
    let mut cur = String::new();
    for ch in s.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(name: &str, pool: &str, os: &str) -> Candidate {
        let mut labels = BTreeMap::new();
        labels.insert("agentpool".to_string(), pool.to_string());
        labels.insert("kubernetes.io/os".to_string(), os.to_string());
        Candidate {
            name: name.into(),
            pool: pool.into(),
            os_type: os.into(),
            os_sku: None,
            labels,
            ready: true,
            ssh_disabled: false,
        }
    }

    #[test]
    fn pool_order_then_name_and_windows_skipped_with_the_command() {
        let c = vec![
            cand("u-2", "user", "linux"),
            cand("w-1", "win", "windows"),
            cand("s-1", "system", "linux"),
            cand("u-1", "user", "linux"),
        ];
        let p = plan(
            &c,
            &["system".into(), "user".into(), "win".into()],
            &Filters::default(),
            "-g rg --cluster-name c",
        )
        .unwrap();
        let names: Vec<_> = p.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["s-1", "u-1", "u-2", "w-1"]);
        assert!(!p[3].patch());
        assert!(p[3]
            .reason
            .as_ref()
            .unwrap()
            .contains("az aks nodepool upgrade -g rg --cluster-name c -n win --node-image-only"));
    }

    #[test]
    fn filters_and_their_errors() {
        let c = vec![cand("u-1", "user", "linux"), cand("s-1", "system", "linux")];
        let f = Filters {
            nodepools: vec!["user".into()],
            ..Default::default()
        };
        assert_eq!(plan(&c, &[], &f, "").unwrap().len(), 1);
        let f = Filters {
            nodes: vec!["nope".into()],
            ..Default::default()
        };
        assert_eq!(
            plan(&c, &[], &f, "").unwrap_err(),
            PlanError::UnknownNode("nope".into())
        );
        let f = Filters {
            nodepools: vec!["gpu".into()],
            ..Default::default()
        };
        assert!(matches!(plan(&c, &[], &f, "").unwrap_err(), PlanError::UnknownPool(..)));
        let f = Filters {
            selector: Some("agentpool in (system)".into()),
            ..Default::default()
        };
        let p = plan(&c, &[], &f, "").unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].name, "s-1");
        let f = Filters {
            selector: Some("a b=c".into()),
            ..Default::default()
        };
        assert!(matches!(plan(&c, &[], &f, "").unwrap_err(), PlanError::Selector(..)));
    }

    #[test]
    fn selector_forms() {
        let mut l = BTreeMap::new();
        l.insert("a".to_string(), "1".to_string());
        assert!(Selector::parse("a=1").unwrap().matches(&l));
        assert!(Selector::parse("a==1,!b").unwrap().matches(&l));
        assert!(!Selector::parse("a!=1").unwrap().matches(&l));
        assert!(Selector::parse("a notin (2,3)").unwrap().matches(&l));
        assert!(!Selector::parse("b").unwrap().matches(&l));
    }
}
