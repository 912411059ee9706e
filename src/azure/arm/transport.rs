//! The ARM client's transport: URLs, the bearer token, sending with retries (429 and 5xx with
//! `Retry-After`, transient connection errors) under the one retry policy ([`crate::retry`],
//! [`ARM_RETRY`]'s bounds), paging
//! (`nextLink`), and ARM's error bodies turned into typed errors.

use super::*;
use crate::retry::Backoff;

impl ArmClient {
    pub(in crate::azure) fn url(&self, segments: &[&str], api_version: &str) -> Result<Url, AzureError> {
        if let Some(empty) = segments.iter().position(|s| s.trim().is_empty()) {
            let what = match segments.get(empty.wrapping_sub(1)).copied() {
                Some("subscriptions") => "subscription",
                Some("resourceGroups") => "resource group",
                Some("managedClusters") => "cluster name",
                Some("agentPools") => "node pool name",
                _ => "path segment",
            };
            return Err(AzureError::Config(format!("the {what} is empty")));
        }
        let mut url = self.endpoint.clone();
        url.path_segments_mut()
            .map_err(|_| AzureError::Config(format!("the ARM endpoint {} cannot have a path", self.endpoint)))?
            .pop_if_empty()
            .extend(segments);
        url.query_pairs_mut().append_pair("api-version", api_version);
        Ok(url)
    }

    pub(in crate::azure) async fn get_json<T: DeserializeOwned>(&self, url: Url) -> Result<T, AzureError> {
        let body = self.send(Method::GET, url.clone()).await?;
        decode(&url, &body)
    }

    pub(in crate::azure) async fn list<T: DeserializeOwned>(&self, first: Url) -> Result<Vec<T>, AzureError> {
        let mut out = vec![];
        let mut url = first;
        for _ in 0..MAX_PAGES {
            let page: Page<T> = self.get_json(url.clone()).await?;
            out.extend(page.value);
            match page.next_link.filter(|l| !l.is_empty()) {
                None => return Ok(out),
                Some(link) => url = self.next_url(&url, &link)?,
            }
        }
        Err(AzureError::Decode {
            url: url.to_string(),
            message: format!("more than {MAX_PAGES} pages: the nextLink chain does not end"),
        })
    }

    /// A `nextLink`, only if it stays on the ARM endpoint (the token goes with it).
    pub(super) fn next_url(&self, current: &Url, link: &str) -> Result<Url, AzureError> {
        let next = current.join(link).map_err(|e| AzureError::Decode {
            url: current.to_string(),
            message: format!("nextLink is not a URL: {e}"),
        })?;
        let same = next.scheme() == self.endpoint.scheme()
            && next.host_str() == self.endpoint.host_str()
            && next.port_or_known_default() == self.endpoint.port_or_known_default();
        if !same {
            return Err(AzureError::Decode {
                url: current.to_string(),
                message: format!(
                    "nextLink points to {}, not to the ARM endpoint {}: refusing to send the token there",
                    next.host_str().unwrap_or("?"),
                    self.endpoint
                ),
            });
        }
        Ok(next)
    }

    pub(super) async fn token(&self, fresh: bool) -> Result<AccessToken, AzureError> {
        let mut slot = self.token.lock().await;
        if !fresh {
            if let Some(t) = slot.as_ref() {
                let renew_at = azure_core::time::OffsetDateTime::now_utc() + TOKEN_EARLY_RENEWAL;
                if t.expires_on > renew_at {
                    return Ok(t.clone());
                }
            }
        }
        let t = if fresh {
            self.credential.get_fresh_token(&self.scope).await?
        } else {
            self.credential.get_token(&self.scope).await?
        };
        *slot = Some(t.clone());
        Ok(t)
    }

    /// Send with retries; the body of a 2xx answer, or the typed error.
    pub(super) async fn send(&self, method: Method, url: Url) -> Result<Body, AzureError> {
        Ok(self.send_full(method, url, None).await?.body)
    }

    /// Send with retries (and a JSON body, if any); a 2xx answer with its status and
    /// headers (what long-running operations need), or the typed error.
    pub(in crate::azure) async fn send_full(
        &self,
        method: Method,
        url: Url,
        json: Option<&serde_json::Value>,
    ) -> Result<Reply, AzureError> {
        let mut backoff = Backoff::new(self.retry);
        let mut refreshed = false;
        let what = format!("ARM {method} {}", url.path());
        loop {
            let token = self.token(false).await?;
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token.token.secret())
                .header(reqwest::header::ACCEPT, "application/json");
            if let Some(j) = json {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(serde_json::to_vec(j).unwrap_or_default());
            } else if method == Method::POST || method == Method::PUT {
                req = req.header(reqwest::header::CONTENT_LENGTH, "0").body(Vec::new());
            }
            let outcome = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    match resp.bytes().await {
                        Ok(body) => Ok((status, headers, body)),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            let (status, headers, body) = match outcome {
                Ok(x) => x,
                Err(e) => {
                    let message = transport_message(&e);
                    if let Some(delay) = backoff.after(&what, is_transient(&e), &message) {
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    let attempts = backoff.failures();
                    return Err(AzureError::Transport {
                        url: url.to_string(),
                        message: if attempts > 1 {
                            format!("{message} (after {attempts} attempts)")
                        } else {
                            message
                        },
                    });
                }
            };
            tracing::debug!(
                %method,
                url = %url,
                status = status.as_u16(),
                attempt = backoff.failures() + 1,
                request_id = headers.get("x-ms-request-id").and_then(|v| v.to_str().ok()).unwrap_or(""),
                "ARM request"
            );
            if status.is_success() {
                return Ok(Reply {
                    status,
                    headers,
                    body: Body(body.to_vec()),
                });
            }
            let err = ArmErrorBody::parse(status, &body);
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                // Expired or revoked: one fresh token (bypassing caches), then the same request
                // (not counted as a failed attempt).
                refreshed = true;
                tracing::debug!("ARM refused the token ({}): getting a fresh one", err.code);
                let fresh = self.token(true).await?;
                if fresh.token != token.token {
                    continue;
                }
                tracing::debug!("the credential returned the same token again");
            }
            let asked = retry_after(&headers).or_else(|| quota_resets_after(&headers));
            let reason = format!(
                "answered {} {}{}",
                status.as_u16(),
                err.code,
                if asked.is_some() { ", with Retry-After" } else { "" }
            );
            if let Some(delay) = backoff.after_asked(&what, is_retryable(status), &reason, asked) {
                tokio::time::sleep(delay).await;
                continue;
            }
            return Err(err.into_error(status, &headers, backoff.failures()));
        }
    }
}

/// A response body. Not `Debug`: it may hold a kubeconfig.
pub(in crate::azure) struct Body(pub(in crate::azure) Vec<u8>);

/// A successful answer, whole.
pub(in crate::azure) struct Reply {
    pub(in crate::azure) status: StatusCode,
    pub(in crate::azure) headers: HeaderMap,
    pub(in crate::azure) body: Body,
}

pub(in crate::azure) fn decode<T: DeserializeOwned>(url: &Url, body: &Body) -> Result<T, AzureError> {
    serde_json::from_slice(&body.0).map_err(|e| AzureError::Decode {
        url: url.to_string(),
        // Position and category only: the body may hold a credential, and serde's
        // messages can quote values.
        message: format!(
            "the body is not the JSON expected ({:?} error at line {}, column {})",
            e.classify(),
            e.line(),
            e.column()
        ),
    })
}

fn transport_message(e: &reqwest::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        src = s.source();
    }
    parts.join(": ")
}

/// Worth another try: timeouts, refused or dropped connections. Not TLS failures (an
/// untrusted certificate stays untrusted) nor errors in building the request.
fn is_transient(e: &reqwest::Error) -> bool {
    if e.is_builder() || e.is_redirect() || e.is_decode() {
        return false;
    }
    // TLS errors arrive as io::Error(InvalidData), sometimes wrapped in io::Error(Other),
    // whose `source()` skips the wrapped error: look inside with `get_ref`.
    fn permanent(io: &std::io::Error) -> bool {
        use std::io::ErrorKind::*;
        matches!(io.kind(), InvalidData | InvalidInput | PermissionDenied | Unsupported)
            || io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<std::io::Error>())
                .is_some_and(permanent)
    }
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if s.downcast_ref::<std::io::Error>().is_some_and(permanent) {
            return false;
        }
        src = s.source();
    }
    true
}

fn is_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// How long the server asks to wait: `retry-after-ms` / `x-ms-retry-after-ms`, else
/// `Retry-After` in seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = text(name).and_then(|v| v.parse::<u64>().ok()) {
            return Some(Duration::from_millis(ms));
        }
    }
    let v = text(RETRY_AFTER.as_str())?;
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>() {
        // A negative, infinite or huge value is no instruction.
        return Duration::try_from_secs_f64(secs).ok();
    }
    let when = crate::http::http_date(v)?;
    Some(Duration::try_from(when.duration_since(jiff::Timestamp::now())).unwrap_or(Duration::ZERO))
}

/// When a throttled Resource Graph quota comes back: `x-ms-user-quota-resets-after`
/// (`hh:mm:ss`), sent with `x-ms-user-quota-remaining` on every answer.
pub fn quota_resets_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("x-ms-user-quota-resets-after")?.to_str().ok()?.trim();
    let mut parts = v.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let secs = h.parse::<u64>().ok()? * 3600 + m.parse::<u64>().ok()? * 60;
    let s: f64 = s.parse().ok()?;
    let total = Duration::from_secs(secs) + Duration::try_from_secs_f64(s).ok()?;
    Some(total)
}

/// The message, followed by what `details[]` say that it does not (Resource Graph puts the
/// reason a query is refused there, with its line and position, under a generic message).
fn with_details(message: String, e: &serde_json::Value) -> String {
    let Some(details) = e["details"].as_array() else {
        return message;
    };
    let said: Vec<String> = details
        .iter()
        .filter_map(|d| {
            let m = d["message"].as_str().map(str::trim).filter(|m| !m.is_empty())?;
            if message.contains(m) {
                return None;
            }
            Some(match (d["line"].as_u64(), d["characterPositionInLine"].as_u64()) {
                (Some(l), Some(c)) => format!("{m} (line {l}, position {c})"),
                _ => m.to_string(),
            })
        })
        .collect();
    if said.is_empty() {
        message
    } else {
        format!("{message}: {}", said.join("; "))
    }
}

/// `{"error":{"code","message"}}` (or the same at top level, as some providers answer).
pub(super) struct ArmErrorBody {
    code: String,
    message: String,
}

impl ArmErrorBody {
    pub(super) fn parse(status: StatusCode, body: &[u8]) -> ArmErrorBody {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
        let e = if v["error"].is_object() { &v["error"] } else { &v };
        let code = e["code"].as_str().filter(|c| !c.is_empty());
        let message = e["message"].as_str().filter(|m| !m.is_empty());
        let fallback = || {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() || v.is_object() {
                status.canonical_reason().unwrap_or("no message").to_string()
            } else {
                text.chars().take(300).collect()
            }
        };
        ArmErrorBody {
            code: code.map(str::to_string).unwrap_or_else(|| {
                status
                    .canonical_reason()
                    .map(|r| r.replace(' ', ""))
                    .unwrap_or_else(|| format!("Http{}", status.as_u16()))
            }),
            message: with_details(message.map(str::to_string).unwrap_or_else(fallback), e),
        }
    }

    pub(super) fn into_error(self, status: StatusCode, headers: &HeaderMap, attempts: u32) -> AzureError {
        let request_id = headers
            .get("x-ms-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match status.as_u16() {
            404 => AzureError::NotFound {
                code: self.code,
                message: self.message,
                request_id,
            },
            401 | 403 => AzureError::Auth {
                status: status.as_u16(),
                code: self.code,
                message: self.message,
                request_id,
            },
            s => AzureError::Api {
                status: s,
                code: self.code,
                message: self.message,
                request_id,
                attempts,
            },
        }
    }
}
