//! The webhook sink: an HTTPS endpoint (the emulator's CA) that takes what notification
//! senders POST (Slack incoming webhooks, Teams workflows, generic JSON webhooks) and records
//! each delivery in the event log (`webhook`: the path after `/hooks/` and the body), so tests
//! assert on the payloads received. Faults: `webhook-error` (answer a status instead of 200),
//! `webhook-slow` (wait before answering).

use crate::events::kinds;
use crate::Shared;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use std::sync::Arc;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().route("/hooks/{*path}", post(deliver)).with_state(shared)
}

async fn deliver(State(shared): State<Arc<Shared>>, Path(path): Path<String>, body: Bytes) -> (StatusCode, String) {
    let (delay, error) = shared.faults.webhook_next();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let text = String::from_utf8_lossy(&body).to_string();
    match error {
        Some(status) => {
            shared.events.record(
                kinds::WEBHOOK,
                None,
                Some(&path),
                format!("refused with {status} (fault): {text}"),
            );
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "webhook-error fault".into(),
            )
        }
        None => {
            shared.events.record(kinds::WEBHOOK, None, Some(&path), text);
            // Slack and Teams answer a bare `ok` / 202; 200 `ok` suits every sender.
            (StatusCode::OK, "ok".into())
        }
    }
}
