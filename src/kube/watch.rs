//! Waiting for one object to change: a watch from the resourceVersion last read, so that
//! nothing in between is missed, instead of polling. Used for a rebooting Node and for a
//! PodDisruptionBudget that refused an eviction.

use ::kube::api::{Api, WatchEvent, WatchParams};
use ::kube::Resource;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::time::Duration;
use tokio::time::Instant;

/// Wait for the next change of object `name` after resourceVersion `rv`, at most until
/// `deadline`. Without a resourceVersion, or when the watch fails or ends without an event,
/// wait until `fallback` after the start instead: a slower wait, never a wrong one. The
/// caller reads the object again afterwards either way.
pub async fn next_change<K>(api: &Api<K>, name: &str, rv: Option<&str>, deadline: Instant, fallback: Duration)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    use futures::StreamExt;
    let started = Instant::now();
    let poll = (started + fallback).min(deadline);
    let Some(rv) = rv else {
        tokio::time::sleep_until(poll).await;
        return;
    };
    let secs = deadline.saturating_duration_since(started).as_secs().clamp(1, 60) as u32;
    let wp = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(secs);
    let changed = match tokio::time::timeout_at(deadline, api.watch(&wp, rv)).await {
        Ok(Ok(stream)) => {
            let mut stream = std::pin::pin!(stream);
            matches!(
                tokio::time::timeout_at(deadline, stream.next()).await,
                Ok(Some(Ok(WatchEvent::Added(_)
                    | WatchEvent::Modified(_)
                    | WatchEvent::Deleted(_))))
            )
        }
        _ => false,
    };
    if !changed {
        tokio::time::sleep_until(poll).await;
    }
}

/// [`next_change`] from the object's version now: read it, then wait for the change after
/// that (a missing or unreadable object waits for `fallback`, as without a version).
pub async fn change_from_now<K>(api: &Api<K>, name: &str, deadline: Instant, fallback: Duration)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let rv = api
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|o| o.meta().resource_version.clone());
    next_change(api, name, rv.as_deref(), deadline, fallback).await
}
