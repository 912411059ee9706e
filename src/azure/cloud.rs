//! Azure clouds: ARM endpoint, Entra ID authority host and ARM token scope, with the
//! overrides from [`Settings`] (a custom ARM endpoint and scope, an authority host, a CA
//! bundle trusted in addition to the system roots).

use super::AzureError;
use crate::settings::{env, Settings};
use reqwest::Url;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A national cloud (`--cloud`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudName {
    AzureCloud,
    AzureChinaCloud,
    AzureUsGovernment,
}

/// Where aks-patch talks to for one cloud.
#[derive(Debug, Clone)]
pub struct CloudEndpoints {
    pub cloud: CloudName,
    /// ARM base URL, e.g. `https://management.azure.com/`.
    pub arm_endpoint: Url,
    /// Entra ID authority host, e.g. `https://login.microsoftonline.com`.
    pub authority_host: String,
    /// Token scope for ARM, e.g. `https://management.azure.com/.default`.
    pub arm_scope: String,
    /// A PEM bundle trusted in addition to the system roots, and the variable that named it.
    pub ca_bundle: Option<(PathBuf, &'static str)>,
}

/// `connect_timeout` and whole-request timeout of the HTTP clients.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

impl CloudEndpoints {
    /// The well-known endpoints of a cloud, without overrides.
    pub fn builtin(cloud: CloudName) -> CloudEndpoints {
        let (arm, authority) = match cloud {
            CloudName::AzureCloud => ("https://management.azure.com/", "https://login.microsoftonline.com"),
            CloudName::AzureChinaCloud => ("https://management.chinacloudapi.cn/", "https://login.chinacloudapi.cn"),
            CloudName::AzureUsGovernment => (
                "https://management.usgovcloudapi.net/",
                "https://login.microsoftonline.us",
            ),
        };
        CloudEndpoints {
            cloud,
            arm_endpoint: Url::parse(arm).expect("built-in ARM URLs parse"),
            authority_host: authority.to_string(),
            arm_scope: format!("{arm}.default"),
            ca_bundle: None,
        }
    }

    /// The cloud's endpoints with the overrides from `settings`: `AKS_PATCH_ARM_ENDPOINT`
    /// (the scope stays the cloud's unless `AKS_PATCH_ARM_SCOPE` is set),
    /// `AZURE_AUTHORITY_HOST`, and `AKS_PATCH_CA_BUNDLE` / `REQUESTS_CA_BUNDLE`.
    pub fn resolve(cloud: CloudName, settings: &Settings) -> Result<CloudEndpoints, AzureError> {
        let mut c = CloudEndpoints::builtin(cloud);
        if let Some(e) = &settings.arm_endpoint {
            let mut url = Url::parse(e).map_err(|err| {
                AzureError::Config(format!(
                    "{} `{e}` is not a URL ({err}); expected e.g. https://management.azure.com",
                    env::ARM_ENDPOINT
                ))
            })?;
            check_https(&url, env::ARM_ENDPOINT)?;
            if !url.path().ends_with('/') {
                let p = format!("{}/", url.path());
                url.set_path(&p);
            }
            url.set_query(None);
            c.arm_endpoint = url;
        }
        if let Some(s) = &settings.arm_scope {
            c.arm_scope = s.clone();
        }
        if let Some(a) = &settings.authority_host {
            let url = Url::parse(a)
                .map_err(|err| AzureError::Config(format!("{} `{a}` is not a URL ({err})", env::AUTHORITY_HOST)))?;
            if url.scheme() != "https" {
                return Err(AzureError::Config(format!(
                    "{} `{a}` must use https (azure_identity refuses anything else)",
                    env::AUTHORITY_HOST
                )));
            }
            c.authority_host = a.trim_end_matches('/').to_string();
        }
        c.ca_bundle = settings.ca_bundle.clone();
        Ok(c)
    }

    /// An HTTPS client that trusts the system roots and the CA bundle. Redirects are not
    /// followed (a bearer token must not travel to another host).
    pub fn http_client(&self) -> Result<reqwest::Client, AzureError> {
        crate::http::client(self.ca_bundle.as_ref(), CONNECT_TIMEOUT, REQUEST_TIMEOUT)
            .map_err(|e| AzureError::Config(e.to_string()))
    }

    /// azure_core client options for azure_identity's HTTP credentials: this cloud's
    /// authority host, and `http` (trusting the CA bundle) as the transport.
    pub fn client_options(&self, http: &reqwest::Client) -> azure_core::http::ClientOptions {
        let mut custom = azure_core::cloud::CustomConfiguration::default();
        custom.authority_host = self.authority_host.clone();
        azure_core::http::ClientOptions {
            transport: Some(azure_core::http::Transport::new(Arc::new(http.clone()))),
            cloud: Some(Arc::new(azure_core::cloud::CloudConfiguration::Custom(custom))),
            ..Default::default()
        }
    }
}

/// ARM must be HTTPS; plain http only to a loopback address (a local test server).
fn check_https(url: &Url, var: &str) -> Result<(), AzureError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        _ => Err(AzureError::Config(format!(
            "{var} `{url}` must use https: bearer tokens are never sent in the clear"
        ))),
    }
}

pub(crate) fn is_loopback(url: &Url) -> bool {
    url.host_str().is_some_and(|h| {
        h.eq_ignore_ascii_case("localhost")
            || h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let m: std::collections::HashMap<_, _> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn builtin_clouds() {
        let c = CloudEndpoints::builtin(CloudName::AzureCloud);
        assert_eq!(c.arm_endpoint.as_str(), "https://management.azure.com/");
        assert_eq!(c.arm_scope, "https://management.azure.com/.default");
        assert_eq!(c.authority_host, "https://login.microsoftonline.com");
        let c = CloudEndpoints::builtin(CloudName::AzureChinaCloud);
        assert_eq!(c.arm_scope, "https://management.chinacloudapi.cn/.default");
        assert_eq!(c.authority_host, "https://login.chinacloudapi.cn");
        let c = CloudEndpoints::builtin(CloudName::AzureUsGovernment);
        assert_eq!(c.arm_endpoint.as_str(), "https://management.usgovcloudapi.net/");
        assert_eq!(c.authority_host, "https://login.microsoftonline.us");
    }

    #[test]
    fn custom_endpoint_keeps_the_cloud_scope_unless_told() {
        let c = CloudEndpoints::resolve(
            CloudName::AzureCloud,
            &settings(&[(env::ARM_ENDPOINT, "https://127.0.0.1:8443")]),
        )
        .unwrap();
        assert_eq!(c.arm_endpoint.as_str(), "https://127.0.0.1:8443/");
        assert_eq!(c.arm_scope, "https://management.azure.com/.default");
        let c = CloudEndpoints::resolve(
            CloudName::AzureCloud,
            &settings(&[
                (env::ARM_ENDPOINT, "https://arm.local/stack"),
                (env::ARM_SCOPE, "https://arm.local/.default"),
                (env::AUTHORITY_HOST, "https://login.local/"),
            ]),
        )
        .unwrap();
        assert_eq!(c.arm_endpoint.as_str(), "https://arm.local/stack/");
        assert_eq!(c.arm_scope, "https://arm.local/.default");
        assert_eq!(c.authority_host, "https://login.local");
    }

    #[test]
    fn plain_http_only_to_loopback() {
        let ok = settings(&[(env::ARM_ENDPOINT, "http://127.0.0.1:9")]);
        assert!(CloudEndpoints::resolve(CloudName::AzureCloud, &ok).is_ok());
        let bad = settings(&[(env::ARM_ENDPOINT, "http://arm.example.com")]);
        let e = CloudEndpoints::resolve(CloudName::AzureCloud, &bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("must use https"), "{e}");
        let bad = settings(&[(env::AUTHORITY_HOST, "http://127.0.0.1:9")]);
        assert!(CloudEndpoints::resolve(CloudName::AzureCloud, &bad).is_err());
    }

    #[test]
    fn missing_ca_bundle_names_the_variable() {
        let s = settings(&[(env::REQUESTS_CA_BUNDLE, "/nonexistent/ca.pem")]);
        let c = CloudEndpoints::resolve(CloudName::AzureCloud, &s).unwrap();
        let e = c.http_client().unwrap_err().to_string();
        assert!(
            e.contains("/nonexistent/ca.pem") && e.contains("REQUESTS_CA_BUNDLE"),
            "{e}"
        );
    }
}
