//! The one pager for Kubernetes lists: every object a `ListParams` selects, fetched in
//! pages of [`PAGE_SIZE`] (`limit` / `continue`), each page retried on transient errors
//! ([`crate::retry`]). Large clusters answer in pages; a caller that reads one page only
//! misses objects.

use super::error::KubeError;
use crate::retry::with_retry;
use ::kube::api::{Api, ListParams};
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// Objects per page, as kubectl asks for.
pub const PAGE_SIZE: u32 = 500;

/// Every object `params` selects, in the order the API server returns them. `what` names
/// the call in retry lines and errors (`listing nodes`); pages after the first say
/// `(next page)`. `params.limit` is replaced by [`PAGE_SIZE`].
pub async fn list_all<K>(api: &Api<K>, params: &ListParams, what: &str) -> Result<Vec<K>, KubeError>
where
    K: Clone + DeserializeOwned + Debug,
{
    list_paged(api, params, PAGE_SIZE, what).await
}

/// [`list_all`] with pages of `page_size` objects.
pub async fn list_paged<K>(api: &Api<K>, params: &ListParams, page_size: u32, what: &str) -> Result<Vec<K>, KubeError>
where
    K: Clone + DeserializeOwned + Debug,
{
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut lp = params.clone().limit(page_size.max(1));
        let what = match &token {
            Some(t) => {
                lp = lp.continue_token(t);
                format!("{what} (next page)")
            }
            None => what.to_string(),
        };
        let page = with_retry(&what, || api.list(&lp))
            .await
            .map_err(|e| KubeError::api(what, e))?;
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(next) => token = Some(next),
            None => return Ok(out),
        }
    }
}
