//! Entra ID tokens for an AKS cluster's API server: what `kubelogin` would fetch, from the
//! same credential chain aks-patch uses for ARM, so that Entra ID clusters work unattended
//! (no kubelogin, no device code).

use super::AzureCredential;
use crate::kube::bearer::{BearerToken, TokenSource};
use crate::kube::error::TokenSourceError;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The AKS Entra server application every AKS-managed Entra ID cluster accepts tokens for.
pub const AKS_SERVER_APP: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";

/// The scope of those tokens.
pub const AKS_SCOPE: &str = "6dae42f8-4368-4678-94ff-3960e28e3630/.default";

/// Tokens for the cluster's Entra server application from an [`AzureCredential`].
pub struct AksTokenSource {
    credential: Arc<AzureCredential>,
    /// `{server application}/.default`: [`AKS_SCOPE`] on AKS-managed Entra ID clusters.
    scope: String,
}

impl AksTokenSource {
    /// Tokens for `server_app` (the kubeconfig's `--server-id`, [`AKS_SERVER_APP`] on
    /// AKS-managed Entra ID).
    pub fn new(credential: Arc<AzureCredential>, server_app: &str) -> AksTokenSource {
        AksTokenSource {
            credential,
            scope: format!("{}/.default", server_app.trim_end_matches('/')),
        }
    }

    fn credential_name(&self) -> String {
        match self.credential.chosen() {
            Some(k) => format!("the {k} credential"),
            None => "the Azure credential".into(),
        }
    }
}

#[async_trait::async_trait]
impl TokenSource for AksTokenSource {
    async fn fetch(&self) -> Result<BearerToken, TokenSourceError> {
        let t = self.credential.get_token(&self.scope).await?;
        let secs = t.expires_on.unix_timestamp().max(0) as u64;
        Ok(BearerToken {
            secret: t.token.secret().to_string(),
            expires_on: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        })
    }

    fn describe(&self) -> String {
        format!(
            "the Entra ID token for the cluster (scope {}) from {}",
            self.scope,
            self.credential_name()
        )
    }

    fn refused_hint(&self) -> String {
        format!(
            "check that {} is still signed in and valid (for the Azure CLI: `az login`), and that the cluster's Entra ID tenant is the credential's; --auth picks another credential",
            self.credential_name()
        )
    }
}
