//! ARM long-running operations, in one place.
//!
//! A PUT, POST or DELETE answered 201/202 with `Azure-AsyncOperation` and/or `Location` is
//! polled: the `Azure-AsyncOperation` status until it is `Succeeded`, `Failed` or `Canceled`
//! (a failure's `error` surfaced as [`AzureError::OperationFailed`]), else the `Location`
//! until it stops answering 202. Every wait honours the last `Retry-After` (capped by the
//! policy and by the deadline). The result: a PUT/PATCH's resource (a final GET), a POST's
//! `Location` answer. Polling URLs are followed only on the ARM endpoint (the token goes
//! with them). Each poll is an ordinary request: 429 and 5xx are retried as any other.

use super::transport::{Body, Reply};
use super::*;

/// How an operation is waited for.
#[derive(Debug, Clone, Copy)]
pub struct LroPolicy {
    /// From the first request until the operation must have ended.
    pub timeout: Duration,
    /// Between polls when the server sends no `Retry-After`.
    pub default_interval: Duration,
    /// The longest wait between polls, whatever `Retry-After` says.
    pub max_interval: Duration,
}

impl Default for LroPolicy {
    fn default() -> Self {
        LroPolicy {
            timeout: Duration::from_secs(30 * 60),
            default_interval: Duration::from_secs(2),
            max_interval: Duration::from_secs(15),
        }
    }
}

fn header_link(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// `error.code` / `error.message` of a status or result body.
fn body_error(v: &serde_json::Value) -> Option<(String, String)> {
    let e = v.get("error").filter(|e| e.is_object())?;
    Some((
        e["code"].as_str().unwrap_or("Failed").to_string(),
        e["message"].as_str().unwrap_or("no message").to_string(),
    ))
}

impl ArmClient {
    /// Send `method url` (with `json`) and, if ARM answers with a long-running operation,
    /// wait for it within `policy`. `what` names it in errors ("run command on VM ...").
    pub(super) async fn operation(
        &self,
        method: Method,
        url: Url,
        json: Option<&serde_json::Value>,
        policy: &LroPolicy,
        what: &str,
    ) -> Result<Body, AzureError> {
        let started = Instant::now();
        let first = self.send_full(method.clone(), url.clone(), json).await?;
        self.follow(method, &url, first, started, policy, what).await
    }

    /// Wait for the operation `first` started; its final body.
    pub(super) async fn follow(
        &self,
        method: Method,
        url: &Url,
        first: Reply,
        started: Instant,
        policy: &LroPolicy,
        what: &str,
    ) -> Result<Body, AzureError> {
        let async_op = header_link(&first.headers, "azure-asyncoperation");
        let location = header_link(&first.headers, "location");
        let running = matches!(first.status.as_u16(), 201 | 202);
        if !running || (async_op.is_none() && location.is_none()) {
            return Ok(first.body);
        }
        let deadline = started + policy.timeout;
        let mut wait = retry_after(&first.headers).unwrap_or(policy.default_interval);
        if let Some(link) = async_op {
            let status_url = self.next_url(url, &link)?;
            loop {
                self.pause(wait, deadline, policy, what).await?;
                let r = self.send_full(Method::GET, status_url.clone(), None).await?;
                let v: serde_json::Value = decode(&status_url, &r.body)?;
                let status = v["status"].as_str().unwrap_or("");
                match status.to_ascii_lowercase().as_str() {
                    "succeeded" => break,
                    "failed" | "canceled" | "cancelled" => {
                        let (code, message) =
                            body_error(&v).unwrap_or_else(|| ("Failed".into(), "no error given".into()));
                        return Err(AzureError::OperationFailed {
                            what: what.to_string(),
                            status: status.to_string(),
                            code,
                            message,
                        });
                    }
                    "" => {
                        return Err(AzureError::Decode {
                            url: status_url.to_string(),
                            message: "the operation status has no `status`".into(),
                        })
                    }
                    _ => wait = retry_after(&r.headers).unwrap_or(policy.default_interval),
                }
            }
            if method == Method::PUT || method == Method::PATCH {
                return Ok(self.send_full(Method::GET, url.clone(), None).await?.body);
            }
            if method == Method::DELETE {
                return Ok(Body(vec![]));
            }
            wait = Duration::ZERO;
        }
        match location {
            // The status said Succeeded (or there was only a Location): its answer is the result.
            Some(link) => {
                let loc = self.next_url(url, &link)?;
                loop {
                    self.pause(wait, deadline, policy, what).await?;
                    let r = self.send_full(Method::GET, loc.clone(), None).await?;
                    if r.status != StatusCode::ACCEPTED {
                        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&r.body.0) {
                            if let Some((code, message)) = body_error(&v) {
                                return Err(AzureError::OperationFailed {
                                    what: what.to_string(),
                                    status: "Failed".into(),
                                    code,
                                    message,
                                });
                            }
                        }
                        return Ok(r.body);
                    }
                    wait = retry_after(&r.headers).unwrap_or(policy.default_interval);
                }
            }
            None => Ok(Body(vec![])),
        }
    }

    /// Sleep `wait` (capped), or fail if that passes the deadline.
    async fn pause(&self, wait: Duration, deadline: Instant, policy: &LroPolicy, what: &str) -> Result<(), AzureError> {
        let wait = wait.min(policy.max_interval);
        let now = Instant::now();
        if now >= deadline {
            return Err(AzureError::OperationTimedOut {
                what: what.to_string(),
                after: policy.timeout,
            });
        }
        tokio::time::sleep(wait.min(deadline - now)).await;
        if Instant::now() >= deadline && !wait.is_zero() {
            return Err(AzureError::OperationTimedOut {
                what: what.to_string(),
                after: policy.timeout,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{client, quick};
    use super::*;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn fast() -> LroPolicy {
        LroPolicy {
            timeout: Duration::from_secs(5),
            default_interval: Duration::from_millis(20),
            max_interval: Duration::from_millis(200),
        }
    }

    #[tokio::test]
    async fn async_operation_is_polled_until_succeeded_then_the_location_gives_the_result() {
        let server = MockServer::start().await;
        let base = server.uri();
        Mock::given(method("POST"))
            .and(path("/vm/runCommand"))
            .respond_with(
                ResponseTemplate::new(202)
                    .insert_header("azure-asyncoperation", format!("{base}/op/1").as_str())
                    .insert_header("location", format!("{base}/op/1/result").as_str())
                    .insert_header("retry-after", "0"),
            )
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/op/1"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("retry-after", "0")
                    .set_body_json(serde_json::json!({"status": "InProgress"})),
            )
            .up_to_n_times(2)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/op/1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"status": "Succeeded"})))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/op/1/result"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"value": [{"message": "hi"}]})))
            .expect(1)
            .mount(&server)
            .await;
        let c = client(&server, false, quick());
        let url = Url::parse(&format!("{base}/vm/runCommand")).unwrap();
        let body = c
            .operation(Method::POST, url, Some(&serde_json::json!({})), &fast(), "run command")
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body.0).unwrap();
        assert_eq!(v["value"][0]["message"], "hi");
        let polls = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path() == "/op/1")
            .count();
        assert_eq!(polls, 3, "InProgress twice, then Succeeded");
    }

    #[tokio::test]
    async fn a_failed_operation_surfaces_its_error_body() {
        let server = MockServer::start().await;
        let base = server.uri();
        Mock::given(method("POST"))
            .and(path("/vm/restart"))
            .respond_with(
                ResponseTemplate::new(202).insert_header("azure-asyncoperation", format!("{base}/op/2").as_str()),
            )
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/op/2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                serde_json::json!({"status": "Failed", "error": {"code": "VMAgentStatusCommunicationError", "message": "agent gone"}}),
            ))
            .mount(&server)
            .await;
        let c = client(&server, false, quick());
        let url = Url::parse(&format!("{base}/vm/restart")).unwrap();
        let e = c
            .operation(Method::POST, url, None, &fast(), "restart of VM 3")
            .await
            .err()
            .expect("the operation fails");
        let text = e.to_string();
        assert!(matches!(e, AzureError::OperationFailed { .. }));
        assert!(
            text.contains("restart of VM 3 ended Failed: agent gone (VMAgentStatusCommunicationError)"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn location_only_is_polled_while_202_and_honours_retry_after() {
        let server = MockServer::start().await;
        let base = server.uri();
        Mock::given(method("DELETE"))
            .and(path("/thing"))
            .respond_with(ResponseTemplate::new(202).insert_header("location", format!("{base}/loc").as_str()))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/loc"))
            .respond_with(ResponseTemplate::new(202).insert_header("retry-after", "1"))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/loc"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&server)
            .await;
        let c = client(&server, false, quick());
        let url = Url::parse(&format!("{base}/thing")).unwrap();
        let policy = LroPolicy {
            max_interval: Duration::from_secs(5),
            ..fast()
        };
        let t = Instant::now();
        c.operation(Method::DELETE, url, None, &policy, "delete").await.unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(950),
            "waited the Retry-After: {:?}",
            t.elapsed()
        );
    }

    #[tokio::test]
    async fn an_operation_that_never_ends_times_out() {
        let server = MockServer::start().await;
        let base = server.uri();
        Mock::given(method("PUT"))
            .and(path("/rc"))
            .respond_with(
                ResponseTemplate::new(201).insert_header("azure-asyncoperation", format!("{base}/op/3").as_str()),
            )
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/op/3"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"status": "InProgress"})))
            .mount(&server)
            .await;
        let c = client(&server, false, quick());
        let url = Url::parse(&format!("{base}/rc")).unwrap();
        let policy = LroPolicy {
            timeout: Duration::from_millis(300),
            ..fast()
        };
        let e = c
            .operation(Method::PUT, url, None, &policy, "run command")
            .await
            .err()
            .expect("the operation fails");
        assert!(matches!(e, AzureError::OperationTimedOut { .. }), "{e}");
    }

    #[tokio::test]
    async fn polling_urls_off_the_arm_endpoint_are_refused() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/vm/restart"))
            .respond_with(ResponseTemplate::new(202).insert_header("azure-asyncoperation", "https://evil.example/op"))
            .mount(&server)
            .await;
        let c = client(&server, false, quick());
        let url = Url::parse(&format!("{}/vm/restart", server.uri())).unwrap();
        let e = c
            .operation(Method::POST, url, None, &fast(), "restart")
            .await
            .err()
            .expect("the operation fails");
        assert!(e.to_string().contains("refusing to send the token"), "{e}");
    }
}
