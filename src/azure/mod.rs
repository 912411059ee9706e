//! Azure: clouds and endpoints ([`cloud`]), the credential chain over azure_identity
//! ([`credential`]), a typed ARM client with retries ([`arm`], models in [`models`]), and for
//! fleets Azure Resource Graph ([`resource_graph`]) and AKS Fleet Manager ([`fleet`]).
//!
//! Every fallible call returns [`AzureError`]. Tokens and kubeconfigs never appear in its
//! messages, in `Debug` output or in logs.

pub mod aks;
pub mod arm;
pub mod cloud;
pub mod credential;
pub mod fleet;
pub mod models;
pub mod resource_graph;
pub mod run_command;

pub use arm::{ArmClient, ClusterId, Kubeconfig, ARM_RETRY};
pub use cloud::{CloudEndpoints, CloudName};
pub use credential::{AuthMethod, AzureCredential, CredentialAttempt, CredentialKind};

/// What went wrong talking to Azure.
#[derive(Debug, thiserror::Error)]
pub enum AzureError {
    /// ARM answered 404: `ResourceNotFound`, `ResourceGroupNotFound`, `SubscriptionNotFound`,
    /// or a missing child resource. Callers exit with code 3.
    #[error("{message} ({code})")]
    NotFound {
        code: String,
        message: String,
        request_id: Option<String>,
    },
    /// ARM refused the credential (HTTP 401) or the principal's rights (HTTP 403).
    #[error("ARM refused the request (HTTP {status} {code}): {message}")]
    Auth {
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
    },
    /// Any other ARM error, after the retries for 429 and 5xx ran out.
    #[error("ARM returned HTTP {status} {code}: {message}{}", attempts_note(*attempts))]
    Api {
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
        /// How many times the request was sent.
        attempts: u32,
    },
    /// No credential produced a token; one entry per credential with its reason.
    #[error("no Azure credential could get a token:{}", list_attempts(attempts))]
    NoCredential { attempts: Vec<CredentialAttempt> },
    /// The network or TLS failed (after retries).
    #[error("cannot reach {url}: {message}")]
    Transport { url: String, message: String },
    /// ARM answered 2xx with a body aks-patch cannot read.
    #[error("unexpected response from {url}: {message}")]
    Decode { url: String, message: String },
    /// Settings (environment or flags) that cannot work.
    #[error("{0}")]
    Config(String),
    /// No subscription given and none could be found.
    #[error("cannot tell which subscription to use: {0}")]
    NoSubscription(String),
    /// A long-running operation ended `Failed` or `Canceled`: its error, as ARM gave it.
    #[error("{what} ended {status}: {message} ({code})")]
    OperationFailed {
        what: String,
        status: String,
        code: String,
        message: String,
    },
    /// A long-running operation (or the wait for a busy resource) did not end in time.
    #[error("{what} did not finish within {} s", after.as_secs())]
    OperationTimedOut { what: String, after: std::time::Duration },
}

fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

fn list_attempts(attempts: &[CredentialAttempt]) -> String {
    attempts
        .iter()
        .map(|a| format!("\n  - {}: {}", a.kind, a.reason))
        .collect()
}

impl AzureError {
    /// A missing subscription, resource group, cluster or child resource (exit code 3).
    pub fn is_not_found(&self) -> bool {
        matches!(self, AzureError::NotFound { .. })
    }

    /// Credentials missing, refused or not allowed.
    pub fn is_auth(&self) -> bool {
        matches!(self, AzureError::Auth { .. } | AzureError::NoCredential { .. })
    }

    /// ARM's error code, when ARM answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            AzureError::NotFound { code, .. } | AzureError::Auth { code, .. } | AzureError::Api { code, .. } => {
                Some(code)
            }
            _ => None,
        }
    }

    /// What the user can do about it, for a `hint:` line.
    pub fn hint(&self) -> Option<String> {
        let h = match self {
            AzureError::NotFound { code, .. } => match code.as_str() {
                "SubscriptionNotFound" => {
                    "check --subscription (or AZURE_SUBSCRIPTION_ID); `az account list -o table` shows the subscriptions you can use"
                }
                "ResourceGroupNotFound" => {
                    "check the resource group (-g) and the subscription; `az group list -o table` lists the groups"
                }
                _ => "check the cluster name (-n) and resource group (-g); `az aks list -o table` lists the clusters you can see",
            },
            AzureError::Auth { status: 403, .. } => {
                "the identity lacks rights on the cluster: it needs Reader on it and the \"Azure Kubernetes Service Cluster User Role\" (or Admin Role with --admin)"
            }
            AzureError::Auth { code, .. } if code == "ExpiredAuthenticationToken" => {
                "the access token expired and a new one was refused too: sign in again (`az login`) and check the system clock"
            }
            AzureError::Auth { .. } => "sign in again with `az login`, or check AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET",
            AzureError::NoCredential { .. } => {
                "sign in with `az login`, or set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET (or AZURE_FEDERATED_TOKEN_FILE for workload identity); --auth picks one credential"
            }
            AzureError::Api { status: 429, .. } => "ARM kept throttling this subscription; wait a few minutes and run again",
            AzureError::Api { status, .. } if *status >= 500 => "ARM kept failing; check https://azure.status.microsoft and run again",
            AzureError::Transport { .. } => {
                "check the network path to ARM (proxy, firewall); for a private CA set AKS_PATCH_CA_BUNDLE to its PEM file"
            }
            AzureError::NoSubscription(_) => {
                "pass --subscription ID, set AZURE_SUBSCRIPTION_ID, or pick a default with `az account set --subscription ID`"
            }
            _ => return None,
        };
        Some(h.to_string())
    }
}
