//! AKS Fleet Manager (`Microsoft.ContainerService/fleets`), read-only, from the fleet
//! scenario: a fleet (hub-less), its members (`properties.clusterResourceId`,
//! `properties.group`) and its update strategies (`properties.strategy.stages[]` of
//! `{name, groups[] = {name}, afterStageWaitInSeconds}`), lists paged with `nextLink`.
//! Update runs are not emulated (aks-patch does not use them).

use super::arm::Front;
use super::scenario::{FleetSpec, MemberSpec, StrategySpec};
use crate::arm::{ok, resource_not_found, ArmRequest};
use crate::ids::stable_hex;
use axum::response::Response;
use serde_json::{json, Value};

fn fleet_id(f: &FleetSpec) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerService/fleets/{}",
        f.subscription_id, f.resource_group, f.name
    )
}

fn system_data() -> Value {
    json!({
        "createdBy": crate::state_dir::az::CLI_USER,
        "createdByType": "User",
        "createdAt": "2026-01-12T09:30:00.0000000Z",
        "lastModifiedBy": crate::state_dir::az::CLI_USER,
        "lastModifiedByType": "User",
        "lastModifiedAt": "2026-01-12T09:30:00.0000000Z",
    })
}

/// `fleets/{f}`.
pub(crate) fn fleet_json(_front: &Front, f: &FleetSpec) -> Value {
    let id = fleet_id(f);
    json!({
        "id": id,
        "name": f.name,
        "type": "Microsoft.ContainerService/fleets",
        "location": f.location,
        "tags": {},
        "eTag": format!("\"{}\"", &stable_hex(&format!("{id}/etag"))[..16]),
        "systemData": system_data(),
        "properties": {"provisioningState": "Succeeded"},
    })
}

fn member_json(front: &Front, f: &FleetSpec, m: &MemberSpec) -> Value {
    let id = format!("{}/members/{}", fleet_id(f), m.name);
    let cluster = front
        .scenario
        .cluster(&m.cluster)
        .map(super::cluster_id)
        .unwrap_or_default();
    let mut props = json!({"clusterResourceId": cluster, "provisioningState": "Succeeded"});
    if let Some(g) = &m.group {
        props["group"] = json!(g);
    }
    json!({
        "id": id,
        "name": m.name,
        "type": "Microsoft.ContainerService/fleets/members",
        "eTag": format!("\"{}\"", &stable_hex(&format!("{id}/etag"))[..16]),
        "systemData": system_data(),
        "properties": props,
    })
}

fn strategy_json(f: &FleetSpec, s: &StrategySpec) -> Value {
    let id = format!("{}/updateStrategies/{}", fleet_id(f), s.name);
    let stages: Vec<Value> = s
        .stages
        .iter()
        .map(|st| {
            let mut v = json!({
                "name": st.name,
                "groups": st.groups.iter().map(|g| json!({"name": g})).collect::<Vec<_>>(),
            });
            if let Some(w) = st.after_stage_wait_in_seconds {
                v["afterStageWaitInSeconds"] = json!(w);
            }
            v
        })
        .collect();
    json!({
        "id": id,
        "name": s.name,
        "type": "Microsoft.ContainerService/fleets/updateStrategies",
        "eTag": format!("\"{}\"", &stable_hex(&format!("{id}/etag"))[..16]),
        "systemData": system_data(),
        "properties": {"provisioningState": "Succeeded", "strategy": {"stages": stages}},
    })
}

/// The fleets of subscription `sub` (and resource group `rg`, when given), as ARM lists them.
pub(super) fn list_fleets(front: &Front, req: &ArmRequest, sub: &str, rg: Option<&str>) -> Response {
    let all: Vec<Value> = front
        .scenario
        .fleets
        .iter()
        .filter(|f| f.subscription_id.eq_ignore_ascii_case(sub))
        .filter(|f| rg.is_none_or(|rg| f.resource_group.eq_ignore_ascii_case(rg)))
        .map(|f| fleet_json(front, f))
        .collect();
    super::arm::page(front, req, all)
}

/// Everything under `resourceGroups/{rg}/providers/Microsoft.ContainerService/fleets/{f}`
/// (`rest`: lower-cased segments after the fleet's name).
pub(super) fn in_fleet(front: &Front, req: &ArmRequest, sub: &str, rg: &str, rest: &[&str]) -> Response {
    let name = &req.segs[7];
    let Some(f) = front.scenario.fleets.iter().find(|f| {
        f.subscription_id.eq_ignore_ascii_case(sub)
            && f.resource_group.eq_ignore_ascii_case(rg)
            && f.name.eq_ignore_ascii_case(name)
    }) else {
        return resource_not_found("Microsoft.ContainerService/fleets", name, &req.segs[3]);
    };
    let child_missing = |rtype: &str, child: &str| {
        resource_not_found(
            &format!("Microsoft.ContainerService/fleets/{rtype}"),
            &format!("{}/{child}", f.name),
            &req.segs[3],
        )
    };
    match rest {
        [] => ok(fleet_json(front, f)),
        ["members"] => {
            let all = f.members.iter().map(|m| member_json(front, f, m)).collect();
            super::arm::page(front, req, all)
        }
        ["members", _] => {
            let m = &req.segs[9];
            match f.members.iter().find(|x| x.name.eq_ignore_ascii_case(m)) {
                Some(x) => ok(member_json(front, f, x)),
                None => child_missing("members", m),
            }
        }
        ["updatestrategies"] => {
            let all = f.update_strategies.iter().map(|s| strategy_json(f, s)).collect();
            super::arm::page(front, req, all)
        }
        ["updatestrategies", _] => {
            let s = &req.segs[9];
            match f.update_strategies.iter().find(|x| x.name.eq_ignore_ascii_case(s)) {
                Some(x) => ok(strategy_json(f, x)),
                None => child_missing("updateStrategies", s),
            }
        }
        _ => super::arm::no_route(req),
    }
}
