//! The emulator's control endpoint (plain HTTP on loopback): `GET /status`,
//! `GET /events`, `POST /faults`. `aks-sim status` and `aks-sim fault` use it.

use crate::faults::Fault;
use crate::{model, store, Shared};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/status",
            get(|State(s): State<Arc<Shared>>| async move { Json(status(&s)) }),
        )
        .route(
            "/events",
            get(|State(s): State<Arc<Shared>>| async move { Json(json!(s.events.all())) }),
        )
        .route("/faults", post(set_fault))
        .with_state(shared)
}

async fn set_fault(State(s): State<Arc<Shared>>, body: axum::body::Bytes) -> (StatusCode, Json<Value>) {
    let fault: Fault = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("invalid fault: {e}")})),
            )
        }
    };
    match s.apply_fault(&fault) {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({"applied": fault, "faults": s.faults.describe()})),
        ),
        Err(e) => (StatusCode::BAD_REQUEST, Json(json!({"error": e}))),
    }
}

/// The cluster as the emulator sees it: nodes (with the machine-side facts the API
/// does not show), faults and the event log.
pub fn status(s: &Shared) -> Value {
    let rt = s.node_runtime.get();
    let nodes: Vec<Value> = s
        .nodes
        .iter()
        .map(|n| {
            let obj = s.store.get(store::NODES, None, &n.name).unwrap_or(Value::Null);
            let machine = rt.map(|r| r.machine_status(s, &n.name)).unwrap_or(Value::Null);
            json!({
                "name": n.name,
                "pool": n.pool,
                "osType": n.os_type,
                "ip": n.ip.to_string(),
                "ready": model::ready_status(&obj),
                "unschedulable": obj["spec"]["unschedulable"].as_bool().unwrap_or(false),
                "bootId": obj["status"]["nodeInfo"]["bootID"],
                "kernelVersion": obj["status"]["nodeInfo"]["kernelVersion"],
                "machine": machine,
            })
        })
        .collect();
    json!({
        "cluster": {
            "subscriptionId": s.scenario.subscription_id,
            "resourceGroup": s.scenario.resource_group,
            "name": s.scenario.cluster.name,
            "nodeOSUpgradeChannel": s.scenario.cluster.node_os_upgrade_channel.as_str(),
        },
        "endpoints": s.endpoints.get(),
        "nodes": nodes,
        "timing": s.scenario.timing,
        "bastion": rt.map(|r| r.bastion_status()).unwrap_or(Value::Null),
        "faults": s.faults.describe(),
        "events": s.events.all(),
    })
}
