//! A credential chain over azure_identity 1.x (which has no DefaultAzureCredential):
//! environment service principal, workload identity, managed identity, Azure CLI. `--auth`
//! picks one. The first credential that produces a token is kept for the rest of the run.
//!
//! - HTTP credentials use a transport that trusts the CA bundle, and the authority host of
//!   the [`CloudEndpoints`] (where `AZURE_AUTHORITY_HOST` has been applied).
//! - Managed identity is only tried when an endpoint variable says there is one
//!   (`IDENTITY_ENDPOINT`, `MSI_ENDPOINT`), when `AKS_PATCH_MANAGED_IDENTITY=1` says this is
//!   an Azure VM, or with `--auth managed-identity`: IMDS (169.254.169.254) is never probed
//!   on a guess.
//! - The Azure CLI runs with the `PATH` of [`Settings::path`], under a timeout.
//! - Nothing here logs or prints a token or a secret.

use super::{AzureError, CloudEndpoints};
use crate::settings::{env, Settings};
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientAssertionCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions, ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which credential to use for ARM (`--auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// Environment service principal, then workload identity, managed identity, Azure CLI.
    Auto,
    /// `AZURE_CLIENT_ID`, `AZURE_TENANT_ID` and `AZURE_CLIENT_SECRET`.
    Env,
    /// `AZURE_CLIENT_ID`, `AZURE_TENANT_ID` and `AZURE_FEDERATED_TOKEN_FILE`.
    WorkloadIdentity,
    /// The VM's or pod's managed identity.
    ManagedIdentity,
    /// `az account get-access-token`.
    Cli,
}

/// How long one credential may take to produce a token.
pub const HTTP_CREDENTIAL_TIMEOUT: Duration = Duration::from_secs(60);
pub const MANAGED_IDENTITY_TIMEOUT: Duration = Duration::from_secs(20);
pub const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// One link of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// AZURE_CLIENT_ID + AZURE_TENANT_ID + AZURE_CLIENT_SECRET.
    EnvironmentServicePrincipal,
    /// AZURE_CLIENT_ID + AZURE_TENANT_ID + AZURE_FEDERATED_TOKEN_FILE.
    WorkloadIdentity,
    /// The VM's, pod's or App Service's managed identity.
    ManagedIdentity,
    /// `az account get-access-token`.
    AzureCli,
    /// A credential handed in by the caller ([`AzureCredential::from_token_credential`]).
    Custom,
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialKind::EnvironmentServicePrincipal => "environment service principal",
            CredentialKind::WorkloadIdentity => "workload identity",
            CredentialKind::ManagedIdentity => "managed identity",
            CredentialKind::AzureCli => "Azure CLI",
            CredentialKind::Custom => "custom credential",
        })
    }
}

/// Why one credential gave no token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialAttempt {
    pub kind: CredentialKind,
    pub reason: String,
}

type Builder = Box<dyn Fn() -> azure_core::Result<Arc<dyn TokenCredential>> + Send + Sync>;

struct Source {
    kind: CredentialKind,
    build: Builder,
    /// The live credential; rebuilt for a fresh token (azure_identity caches tokens inside).
    instance: Mutex<Option<Arc<dyn TokenCredential>>>,
    timeout: Duration,
}

enum Link {
    Ready(Source),
    /// Not configured: listed in the error when nothing works.
    Skipped(CredentialAttempt),
}

/// The credential chain. Cheap to share behind an `Arc`.
pub struct AzureCredential {
    links: Vec<Link>,
    chosen: Mutex<Option<usize>>,
}

impl fmt::Debug for AzureCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureCredential")
            .field("kinds", &self.kinds())
            .field("chosen", &self.chosen())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AzureCredential {
    /// The chain for `--auth method`. With an explicit method that is not configured
    /// (e.g. `--auth env` without AZURE_CLIENT_SECRET) this fails at once, naming what is
    /// missing; otherwise failures show up in [`AzureCredential::get_token`].
    pub fn new(method: AuthMethod, settings: &Settings, cloud: &CloudEndpoints) -> Result<AzureCredential, AzureError> {
        let http = cloud.http_client()?;
        let options = cloud.client_options(&http);
        let explicit = method != AuthMethod::Auto;
        let mut links = vec![];
        let wanted = |m: AuthMethod| method == AuthMethod::Auto || method == m;

        if wanted(AuthMethod::Env) {
            links.push(
                match (&settings.client_id, &settings.tenant_id, &settings.client_secret) {
                    (Some(client), Some(tenant), Some(secret)) => {
                        let (client, tenant, secret, options) =
                            (client.clone(), tenant.clone(), secret.clone(), options.clone());
                        ready(
                            CredentialKind::EnvironmentServicePrincipal,
                            HTTP_CREDENTIAL_TIMEOUT,
                            Box::new(move || {
                                let c = ClientSecretCredential::new(
                                    &tenant,
                                    client.clone(),
                                    secret.clone(),
                                    Some(ClientSecretCredentialOptions {
                                        client_options: options.clone(),
                                    }),
                                )?;
                                Ok(c as Arc<dyn TokenCredential>)
                            }),
                        )
                    }
                    _ => skipped(
                        CredentialKind::EnvironmentServicePrincipal,
                        format!(
                            "not configured: {} not set",
                            missing(&[
                                (env::CLIENT_ID, settings.client_id.is_some()),
                                (env::TENANT_ID, settings.tenant_id.is_some()),
                                (env::CLIENT_SECRET, settings.client_secret.is_some()),
                            ])
                        ),
                    ),
                },
            );
        }
        if wanted(AuthMethod::WorkloadIdentity) {
            links.push(
                match (&settings.client_id, &settings.tenant_id, &settings.federated_token_file) {
                    (Some(client), Some(tenant), Some(file)) => {
                        let (client, tenant, file, options) =
                            (client.clone(), tenant.clone(), file.clone(), options.clone());
                        ready(
                            CredentialKind::WorkloadIdentity,
                            HTTP_CREDENTIAL_TIMEOUT,
                            Box::new(move || {
                                let c = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                                    credential_options: ClientAssertionCredentialOptions {
                                        client_options: options.clone(),
                                    },
                                    client_id: Some(client.clone()),
                                    tenant_id: Some(tenant.clone()),
                                    token_file_path: Some(file.clone()),
                                }))?;
                                Ok(c as Arc<dyn TokenCredential>)
                            }),
                        )
                    }
                    _ => skipped(
                        CredentialKind::WorkloadIdentity,
                        format!(
                            "not configured: {} not set",
                            missing(&[
                                (env::CLIENT_ID, settings.client_id.is_some()),
                                (env::TENANT_ID, settings.tenant_id.is_some()),
                                (env::FEDERATED_TOKEN_FILE, settings.federated_token_file.is_some()),
                            ])
                        ),
                    ),
                },
            );
        }
        if wanted(AuthMethod::ManagedIdentity) {
            let marker = settings.managed_identity_endpoint || settings.managed_identity_opt_in;
            links.push(if explicit || marker {
                // A user-assigned identity is named by AZURE_CLIENT_ID when no secret or
                // federated token says that id belongs to a service principal.
                let user_assigned = settings
                    .client_id
                    .clone()
                    .filter(|_| settings.client_secret.is_none() && settings.federated_token_file.is_none());
                let options = options.clone();
                ready(
                    CredentialKind::ManagedIdentity,
                    MANAGED_IDENTITY_TIMEOUT,
                    Box::new(move || {
                        let c = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                            user_assigned_id: user_assigned.clone().map(UserAssignedId::ClientId),
                            client_options: options.clone(),
                        }))?;
                        Ok(c as Arc<dyn TokenCredential>)
                    }),
                )
            } else {
                skipped(
                    CredentialKind::ManagedIdentity,
                    format!(
                        "not tried: no {} or {} here, and {}=1 is not set to say this is an Azure VM (--auth managed-identity asks IMDS anyway)",
                        env::IDENTITY_ENDPOINT,
                        env::MSI_ENDPOINT,
                        env::MANAGED_IDENTITY
                    ),
                )
            });
        }
        if wanted(AuthMethod::Cli) {
            let executor = Arc::new(CliExecutor {
                path: settings.path.clone(),
                timeout: CLI_TIMEOUT,
            });
            links.push(ready(
                CredentialKind::AzureCli,
                CLI_TIMEOUT + Duration::from_secs(5),
                Box::new(move || {
                    let c = AzureCliCredential::new(Some(AzureCliCredentialOptions {
                        executor: Some(executor.clone()),
                        ..Default::default()
                    }))?;
                    Ok(c as Arc<dyn TokenCredential>)
                }),
            ));
        }
        if explicit {
            if let Some(Link::Skipped(a)) = links.first() {
                return Err(AzureError::NoCredential {
                    attempts: vec![a.clone()],
                });
            }
        }
        Ok(AzureCredential {
            links,
            chosen: Mutex::new(None),
        })
    }

    /// A chain of one credential supplied by the caller.
    pub fn from_token_credential(credential: Arc<dyn TokenCredential>) -> AzureCredential {
        AzureCredential {
            links: vec![ready(
                CredentialKind::Custom,
                HTTP_CREDENTIAL_TIMEOUT,
                Box::new(move || Ok(credential.clone())),
            )],
            chosen: Mutex::new(None),
        }
    }

    /// The credentials this chain will try, in order.
    pub fn kinds(&self) -> Vec<CredentialKind> {
        self.links
            .iter()
            .filter_map(|l| match l {
                Link::Ready(s) => Some(s.kind),
                Link::Skipped(_) => None,
            })
            .collect()
    }

    /// The credential that produced a token, once one has.
    pub fn chosen(&self) -> Option<CredentialKind> {
        let i = (*lock(&self.chosen))?;
        match &self.links[i] {
            Link::Ready(s) => Some(s.kind),
            Link::Skipped(a) => Some(a.kind),
        }
    }

    /// A token for `scope` (e.g. `https://management.azure.com/.default`).
    pub async fn get_token(&self, scope: &str) -> Result<AccessToken, AzureError> {
        self.token(scope, false).await
    }

    /// A token for `scope` that does not come from a cache: the credential is built anew,
    /// for when the service refused the last one as expired.
    pub async fn get_fresh_token(&self, scope: &str) -> Result<AccessToken, AzureError> {
        self.token(scope, true).await
    }

    async fn token(&self, scope: &str, fresh: bool) -> Result<AccessToken, AzureError> {
        let chosen = *lock(&self.chosen);
        if let Some(i) = chosen {
            if let Link::Ready(s) = &self.links[i] {
                return try_source(s, scope, fresh).await.map_err(|e| AzureError::NoCredential {
                    attempts: vec![CredentialAttempt {
                        kind: s.kind,
                        reason: e.to_string(),
                    }],
                });
            }
        }
        let mut attempts = vec![];
        for (i, link) in self.links.iter().enumerate() {
            match link {
                Link::Skipped(a) => attempts.push(a.clone()),
                Link::Ready(s) => match try_source(s, scope, fresh).await {
                    Ok(t) => {
                        tracing::debug!("Azure credential: using the {}", s.kind);
                        *lock(&self.chosen) = Some(i);
                        return Ok(t);
                    }
                    Err(e) => {
                        tracing::debug!("Azure credential: the {} gave no token: {e}", s.kind);
                        attempts.push(CredentialAttempt {
                            kind: s.kind,
                            reason: e.to_string(),
                        });
                    }
                },
            }
        }
        Err(AzureError::NoCredential { attempts })
    }
}

fn ready(kind: CredentialKind, timeout: Duration, build: Builder) -> Link {
    Link::Ready(Source {
        kind,
        build,
        instance: Mutex::new(None),
        timeout,
    })
}

fn skipped(kind: CredentialKind, reason: String) -> Link {
    Link::Skipped(CredentialAttempt { kind, reason })
}

fn missing(vars: &[(&str, bool)]) -> String {
    let names: Vec<&str> = vars.iter().filter(|(_, set)| !set).map(|(n, _)| *n).collect();
    names.join(", ")
}

/// Why one credential of the chain gave no token.
#[derive(Debug, thiserror::Error)]
enum SourceError {
    /// azure_identity's error (told on one line, without its troubleshooting link).
    #[error("{}", reason(.0))]
    Azure(#[source] azure_core::Error),
    #[error("no token within {} s", .0.as_secs())]
    TimedOut(Duration),
}

async fn try_source(s: &Source, scope: &str, fresh: bool) -> Result<AccessToken, SourceError> {
    let cred = {
        let mut slot = lock(&s.instance);
        match slot.as_ref() {
            Some(c) if !fresh => c.clone(),
            _ => {
                let c = (s.build)().map_err(SourceError::Azure)?;
                *slot = Some(c.clone());
                c
            }
        }
    };
    match tokio::time::timeout(s.timeout, cred.get_token(&[scope], None)).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(SourceError::Azure(e)),
        Err(_) => Err(SourceError::TimedOut(s.timeout)),
    }
}

/// azure_identity's message on one line, without its troubleshooting link.
fn reason(e: &azure_core::Error) -> String {
    let text = e.to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("To troubleshoot, visit"))
        .collect();
    lines.join(" ")
}

#[async_trait::async_trait]
impl TokenCredential for AzureCredential {
    async fn get_token(&self, scopes: &[&str], _: Option<TokenRequestOptions<'_>>) -> azure_core::Result<AccessToken> {
        let [scope] = scopes else {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                "aks-patch's credential chain takes exactly one scope",
            ));
        };
        AzureCredential::get_token(self, scope)
            .await
            .map_err(|e| azure_core::Error::new(azure_core::error::ErrorKind::Credential, e))
    }
}

/// Runs what azure_identity asks (`/bin/sh -c "cd /bin && az …"`) with our `PATH`, no
/// stdin, and a deadline after which the process is killed.
#[derive(Debug)]
pub(crate) struct CliExecutor {
    pub(crate) path: Option<OsString>,
    pub(crate) timeout: Duration,
}

#[async_trait::async_trait]
impl azure_identity::Executor for CliExecutor {
    async fn run(&self, program: &OsStr, args: &[&OsStr]) -> std::io::Result<std::process::Output> {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args).stdin(std::process::Stdio::null()).kill_on_drop(true);
        if let Some(p) = &self.path {
            cmd.env(env::PATH, p);
        }
        match tokio::time::timeout(self.timeout, cmd.output()).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("az did not finish within {} s", self.timeout.as_secs()),
            )),
        }
    }
}

/// Why `az` gave no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AzCliError {
    #[error("cannot run az: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("az not found on PATH (install the Azure CLI)")]
    NotInstalled,
    /// `az` failed: what it printed on stderr (on one line), or its exit status when it
    /// printed nothing.
    #[error("{}", if .stderr.is_empty() { format!("az {} failed ({})", .args, .status) } else { .stderr.clone() })]
    Failed {
        args: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

impl CliExecutor {
    /// Run `az ARGS` as azure_identity does and return its stdout, or why it failed.
    pub(crate) async fn az(&self, args: &str) -> Result<String, AzCliError> {
        use azure_identity::Executor;
        let command = format!("cd /bin && az {args}");
        let out = self
            .run(OsStr::new("/bin/sh"), &[OsStr::new("-c"), OsStr::new(&command)])
            .await
            .map_err(AzCliError::Spawn)?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        if out.status.code() == Some(127) {
            return Err(AzCliError::NotInstalled);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(AzCliError::Failed {
            args: args.to_string(),
            status: out.status,
            stderr: stderr
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::CloudName;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let m: std::collections::HashMap<_, _> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn auto_chain_skips_what_is_not_configured_and_never_imds_on_a_guess() {
        let s = settings(&[(env::PATH, "/nonexistent")]);
        let c = AzureCredential::new(AuthMethod::Auto, &s, &CloudEndpoints::builtin(CloudName::AzureCloud)).unwrap();
        assert_eq!(c.kinds(), [CredentialKind::AzureCli]);

        let s = settings(&[
            (env::CLIENT_ID, "c"),
            (env::TENANT_ID, "t"),
            (env::CLIENT_SECRET, "s"),
            (env::MSI_ENDPOINT, "http://127.0.0.1:9/msi"),
        ]);
        let c = AzureCredential::new(AuthMethod::Auto, &s, &CloudEndpoints::builtin(CloudName::AzureCloud)).unwrap();
        assert_eq!(
            c.kinds(),
            [
                CredentialKind::EnvironmentServicePrincipal,
                CredentialKind::ManagedIdentity,
                CredentialKind::AzureCli
            ]
        );
    }

    #[test]
    fn explicit_method_names_what_is_missing() {
        let s = settings(&[(env::CLIENT_ID, "c")]);
        let cloud = CloudEndpoints::builtin(CloudName::AzureCloud);
        let e = AzureCredential::new(AuthMethod::Env, &s, &cloud).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("AZURE_TENANT_ID, AZURE_CLIENT_SECRET"), "{text}");
        assert!(!text.contains("AZURE_CLIENT_ID,"), "{text}");
        assert!(e.hint().unwrap().contains("az login"));
        let e = AzureCredential::new(AuthMethod::WorkloadIdentity, &s, &cloud).unwrap_err();
        assert!(e.to_string().contains("AZURE_FEDERATED_TOKEN_FILE"), "{e}");
        // Explicit managed identity is configured even without markers (nothing is sent yet).
        let c = AzureCredential::new(AuthMethod::ManagedIdentity, &s, &cloud).unwrap();
        assert_eq!(c.kinds(), [CredentialKind::ManagedIdentity]);
    }

    #[test]
    fn debug_shows_no_secret() {
        let s = settings(&[
            (env::CLIENT_ID, "c"),
            (env::TENANT_ID, "t"),
            (env::CLIENT_SECRET, "s3cr3t-value"),
        ]);
        let c = AzureCredential::new(AuthMethod::Env, &s, &CloudEndpoints::builtin(CloudName::AzureCloud)).unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("s3cr3t-value"), "{d}");
    }
}
