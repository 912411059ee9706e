//! Stages: the order clusters are patched in.
//!
//! - `--stage SELECTOR` given in order (`--stage env=dev --stage env=staging --stage
//!   env=prod`): each cluster goes to the first stage whose tags match; a cluster no stage
//!   matches is left out (and named).
//! - A Fleet Manager update strategy: its stages in order, each taking the members of its
//!   groups, with its `afterStageWaitInSeconds`.
//! - Neither: one stage of every cluster.

use super::select::TagSet;
use super::ClusterRef;
use crate::azure::fleet::UpdateStage;
use serde::Serialize;
use std::time::Duration;

/// One stage: its clusters run at once (up to `--max-clusters`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stage {
    pub name: String,
    pub clusters: Vec<ClusterRef>,
    /// The soak after this stage, when its definition has one (a strategy's
    /// `afterStageWaitInSeconds`); else `--stage-wait`.
    #[serde(skip)]
    pub wait_after: Option<Duration>,
}

/// The stages, and the clusters none of them takes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StagePlan {
    pub stages: Vec<Stage>,
    pub unstaged: Vec<ClusterRef>,
}

/// A strategy that cannot order these clusters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StageError {
    #[error("the update strategy has no stages")]
    NoStages,
    #[error("the update strategy's group `{group}` is in stages `{first}` and `{second}`")]
    GroupTwice {
        group: String,
        first: String,
        second: String,
    },
}

/// One stage of every cluster.
pub fn single(clusters: Vec<ClusterRef>) -> StagePlan {
    StagePlan {
        stages: vec![Stage {
            name: "all".into(),
            clusters,
            wait_after: None,
        }],
        unstaged: vec![],
    }
}

/// Stages from tag selectors, in the order given.
pub fn by_tags(clusters: Vec<ClusterRef>, selectors: &[TagSet]) -> StagePlan {
    let mut stages: Vec<Stage> = selectors
        .iter()
        .map(|s| Stage {
            name: s.to_string(),
            clusters: vec![],
            wait_after: None,
        })
        .collect();
    let mut unstaged = vec![];
    for c in clusters {
        match selectors.iter().position(|s| s.matches(&c.tags)) {
            Some(i) => stages[i].clusters.push(c),
            None => unstaged.push(c),
        }
    }
    StagePlan { stages, unstaged }
}

/// Stages from a Fleet Manager update strategy: each stage takes the members of its groups.
pub fn by_strategy(clusters: Vec<ClusterRef>, strategy: &[UpdateStage]) -> Result<StagePlan, StageError> {
    if strategy.is_empty() {
        return Err(StageError::NoStages);
    }
    let mut seen: Vec<(String, String)> = vec![];
    for s in strategy {
        for g in &s.groups {
            if let Some((_, first)) = seen.iter().find(|(gr, _)| gr.eq_ignore_ascii_case(&g.name)) {
                return Err(StageError::GroupTwice {
                    group: g.name.clone(),
                    first: first.clone(),
                    second: s.name.clone(),
                });
            }
            seen.push((g.name.clone(), s.name.clone()));
        }
    }
    let mut stages: Vec<Stage> = strategy
        .iter()
        .map(|s| Stage {
            name: s.name.clone(),
            clusters: vec![],
            wait_after: s.after_stage_wait_in_seconds.map(Duration::from_secs),
        })
        .collect();
    let mut unstaged = vec![];
    for c in clusters {
        let at = c.fleet_group.as_deref().and_then(|g| {
            strategy
                .iter()
                .position(|s| s.groups.iter().any(|sg| sg.name.eq_ignore_ascii_case(g)))
        });
        match at {
            Some(i) => stages[i].clusters.push(c),
            None => unstaged.push(c),
        }
    }
    Ok(StagePlan { stages, unstaged })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::fleet::UpdateGroup;
    use crate::azure::ClusterId;

    fn cluster(name: &str, env: &str) -> ClusterRef {
        let mut c = ClusterRef::new(ClusterId::new("s1", "rg", name));
        c.tags.insert("env".into(), env.into());
        c
    }

    fn names(s: &Stage) -> Vec<&str> {
        s.clusters.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn tag_stages_keep_the_order_given_and_name_the_clusters_left_out() {
        let clusters = vec![
            cluster("p1", "prod"),
            cluster("d1", "dev"),
            cluster("x1", "lab"),
            cluster("d2", "dev"),
        ];
        let sel: Vec<TagSet> = ["env=dev", "env=prod"].iter().map(|s| s.parse().unwrap()).collect();
        let plan = by_tags(clusters, &sel);
        assert_eq!(plan.stages.len(), 2);
        assert_eq!(plan.stages[0].name, "env=dev");
        assert_eq!(names(&plan.stages[0]), ["d1", "d2"]);
        assert_eq!(names(&plan.stages[1]), ["p1"]);
        assert_eq!(plan.unstaged.len(), 1);
        assert_eq!(plan.unstaged[0].name, "x1");
    }

    #[test]
    fn a_cluster_goes_to_the_first_stage_it_matches_only() {
        let sel: Vec<TagSet> = ["env=dev", "env=dev"].iter().map(|s| s.parse().unwrap()).collect();
        let plan = by_tags(vec![cluster("d1", "dev")], &sel);
        assert_eq!(names(&plan.stages[0]), ["d1"]);
        assert!(plan.stages[1].clusters.is_empty());
    }

    fn stage(name: &str, groups: &[&str], wait: Option<u64>) -> UpdateStage {
        UpdateStage {
            name: name.into(),
            groups: groups.iter().map(|g| UpdateGroup { name: g.to_string() }).collect(),
            after_stage_wait_in_seconds: wait,
        }
    }

    #[test]
    fn strategy_stages_take_the_members_of_their_groups_with_their_waits() {
        let member = |n: &str, g: Option<&str>| {
            let mut c = ClusterRef::new(ClusterId::new("s1", "rg", n));
            c.fleet_group = g.map(str::to_string);
            c
        };
        let clusters = vec![
            member("a", Some("dev")),
            member("b", Some("PROD")),
            member("c", Some("staging")),
            member("d", None),
        ];
        let plan = by_strategy(
            clusters,
            &[
                stage("first", &["dev"], Some(60)),
                stage("rest", &["staging", "prod"], None),
            ],
        )
        .unwrap();
        assert_eq!(names(&plan.stages[0]), ["a"]);
        assert_eq!(plan.stages[0].wait_after, Some(Duration::from_secs(60)));
        assert_eq!(names(&plan.stages[1]), ["b", "c"]);
        assert_eq!(plan.stages[1].wait_after, None);
        assert_eq!(plan.unstaged[0].name, "d", "a member of no group of the strategy");
        assert_eq!(by_strategy(vec![], &[]), Err(StageError::NoStages));
        assert!(matches!(
            by_strategy(vec![], &[stage("a", &["dev"], None), stage("b", &["dev"], None)]),
            Err(StageError::GroupTwice { .. })
        ));
    }
}
