//! The HTTPS clients aks-patch makes for ARM, Entra ID and webhooks: the system roots plus the
//! configured CA bundle (`AKS_PATCH_CA_BUNDLE` / `REQUESTS_CA_BUNDLE`), a user agent, and no
//! redirects (a bearer token or a webhook's secret URL must not travel to another host).

use std::path::PathBuf;
use std::time::Duration;

/// A client with these timeouts that also trusts `ca_bundle` (its path and the variable that
/// named it, for messages). `Err` says what is wrong with the bundle.
pub fn client(
    ca_bundle: Option<&(PathBuf, &'static str)>,
    connect_timeout: Duration,
    timeout: Duration,
) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("aks-patch/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none());
    if let Some((path, var)) = ca_bundle {
        b = b.tls_certs_merge(roots(path, var)?);
    }
    b.build().map_err(|e| format!("cannot set up the HTTPS client: {e}"))
}

/// The PEM certificates of the CA bundle at `path` (named by `var`).
fn roots(path: &std::path::Path, var: &str) -> Result<Vec<reqwest::Certificate>, String> {
    let pem =
        std::fs::read(path).map_err(|e| format!("cannot read the CA bundle {} (from {var}): {e}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        format!(
            "the CA bundle {} (from {var}) is not a PEM certificate bundle: {e}",
            path.display()
        )
    })?;
    if certs.is_empty() {
        return Err(format!(
            "the CA bundle {} (from {var}) holds no PEM certificate",
            path.display()
        ));
    }
    Ok(certs)
}
