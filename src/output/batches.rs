//! The batches of `apply --max-unavailable` in words: the dry-run's plan.

use crate::rollout::batches::{BatchRules, BatchesPlan};

/// `batches (--max-unavailable 10%, one zone at a time): 3` then a line per batch:
/// `  1. zone westeurope-1: n1, n2 (smaller because ...)`, and where the plan stops, why.
pub fn plan_text(plan: &BatchesPlan, rules: &BatchRules) -> String {
    let batches = &plan.batches;
    let zones = if rules.across_zones {
        "across zones"
    } else {
        "one zone at a time"
    };
    let mut out = format!("batches (--max-unavailable {}, {zones}): {}", rules.max, batches.len());
    for (i, b) in batches.iter().enumerate() {
        let zone = b.zone.as_deref().map(|z| format!("zone {z}: ")).unwrap_or_default();
        let limits: Vec<String> = b.limits.iter().map(|l| l.to_string()).collect();
        let smaller = if limits.is_empty() {
            String::new()
        } else {
            format!(" (smaller because {})", limits.join("; "))
        };
        out.push_str(&format!("\n  {}. {zone}{}{smaller}", i + 1, b.nodes.join(", ")));
    }
    if let Some(held) = &plan.held {
        let why: Vec<String> = held.why.iter().map(|h| h.to_string()).collect();
        out.push_str(&format!(
            "\n  then held: {} node(s) left ({}): {}",
            held.left.len(),
            held.left.join(", "),
            why.join("; ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::batches::{Batch, MaxUnavailable};

    #[test]
    fn the_plan_names_each_batch_with_its_zone_and_nodes() {
        let rules: BatchRules = BatchRules {
            max: "2".parse::<MaxUnavailable>().unwrap(),
            across_zones: false,
            drain: Default::default(),
            pending_taint: true,
        };
        let b = |nodes: &[&str], zone: &str| Batch {
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            zone: Some(zone.into()),
            limits: vec![],
        };
        let plan = BatchesPlan {
            batches: vec![b(&["a", "b"], "westeurope-1"), b(&["c"], "westeurope-2")],
            ..Default::default()
        };
        let text = plan_text(&plan, &rules);
        assert_eq!(
            text,
            "batches (--max-unavailable 2, one zone at a time): 2\n  1. zone westeurope-1: a, b\n  2. zone westeurope-2: c"
        );
    }
}
