//! The one place where aks-patch reads its environment: variable names, defaults, and a
//! [`Settings`] value built from them, once, in `main`. Library code takes a `Settings` (or
//! values from it) and never calls `std::env` itself, so tests can pass their own (env vars
//! are process-global in Rust tests). The same goes for facts about this machine that the
//! environment stands for: the host name and the user a lock is held by.

use azure_core::credentials::Secret;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

/// Environment variable names.
pub mod env {
    /// A custom ARM endpoint (`https://…`), e.g. Azure Stack or the aks-sim emulator.
    pub const ARM_ENDPOINT: &str = "AKS_PATCH_ARM_ENDPOINT";
    /// The token scope for that endpoint (default: the selected cloud's ARM scope).
    pub const ARM_SCOPE: &str = "AKS_PATCH_ARM_SCOPE";
    /// A PEM bundle trusted in addition to the system roots.
    pub const CA_BUNDLE: &str = "AKS_PATCH_CA_BUNDLE";
    /// Fallback for [`CA_BUNDLE`], as Python tools (and the Azure CLI) read it.
    pub const REQUESTS_CA_BUNDLE: &str = "REQUESTS_CA_BUNDLE";
    /// Entra ID authority host (`https://login.microsoftonline.com` for the public cloud).
    pub const AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";
    pub const SUBSCRIPTION_ID: &str = "AZURE_SUBSCRIPTION_ID";
    pub const TENANT_ID: &str = "AZURE_TENANT_ID";
    pub const CLIENT_ID: &str = "AZURE_CLIENT_ID";
    pub const CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";
    pub const FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
    /// Set by App Service, Azure Arc and Service Fabric: a managed identity endpoint exists.
    pub const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
    /// Set by Cloud Shell and Azure ML: a managed identity endpoint exists.
    pub const MSI_ENDPOINT: &str = "MSI_ENDPOINT";
    /// `1`/`true`: this machine is an Azure VM, so `--auth auto` may ask IMDS
    /// (169.254.169.254) for a managed identity token. Without it IMDS is only asked with
    /// `--auth managed-identity`.
    pub const MANAGED_IDENTITY: &str = "AKS_PATCH_MANAGED_IDENTITY";
    /// Where aks-patch keeps its own state (known_hosts, run journals).
    pub const STATE_DIR: &str = "AKS_PATCH_STATE_DIR";
    /// The XDG base directory for state: the default state directory is `aks-patch` in it.
    pub const XDG_STATE_HOME: &str = "XDG_STATE_HOME";
    /// The search path for `az`.
    pub const PATH: &str = "PATH";
    /// The default state directory lives under it when `XDG_STATE_HOME` is not set.
    pub const HOME: &str = "HOME";
    /// Who holds the lock (`USER`, else `LOGNAME`).
    pub const USER: &str = "USER";
    pub const LOGNAME: &str = "LOGNAME";
    /// The host name when the kernel's cannot be read.
    pub const HOSTNAME: &str = "HOSTNAME";
    /// Where the ssh control sockets go when it is set (and short).
    pub const XDG_RUNTIME_DIR: &str = "XDG_RUNTIME_DIR";
    /// The temporary directory otherwise (else `/tmp`).
    pub const TMPDIR: &str = "TMPDIR";
    /// A tracing `EnvFilter` directive that replaces the one the flags choose.
    pub const LOG: &str = "AKS_PATCH_LOG";
    /// Set and not empty: no colour anywhere (<https://no-color.org>).
    pub const NO_COLOR: &str = "NO_COLOR";
    /// Set by the kubelet in every pod: the API server of the pod's own cluster.
    pub const KUBERNETES_SERVICE_HOST: &str = "KUBERNETES_SERVICE_HOST";
}

/// Control socket paths are limited to about 100 bytes; openssh adds a random directory
/// and a socket name to this one.
const MAX_CONTROL_DIR_LEN: usize = 60;

/// What aks-patch takes from its environment. Build it once with [`Settings::from_env`]
/// (or [`Settings::from_lookup`] in tests) and pass it down.
#[derive(Clone, Default)]
pub struct Settings {
    /// `AKS_PATCH_ARM_ENDPOINT`.
    pub arm_endpoint: Option<String>,
    /// `AKS_PATCH_ARM_SCOPE`.
    pub arm_scope: Option<String>,
    /// `AKS_PATCH_CA_BUNDLE`, else `REQUESTS_CA_BUNDLE`, and which of the two it came from.
    pub ca_bundle: Option<(PathBuf, &'static str)>,
    /// `AZURE_AUTHORITY_HOST`.
    pub authority_host: Option<String>,
    /// `AZURE_SUBSCRIPTION_ID`.
    pub subscription_id: Option<String>,
    /// `AZURE_TENANT_ID`.
    pub tenant_id: Option<String>,
    /// `AZURE_CLIENT_ID` (service principal, workload identity, or user-assigned managed identity).
    pub client_id: Option<String>,
    /// `AZURE_CLIENT_SECRET`.
    pub client_secret: Option<Secret>,
    /// `AZURE_FEDERATED_TOKEN_FILE`.
    pub federated_token_file: Option<PathBuf>,
    /// `IDENTITY_ENDPOINT` or `MSI_ENDPOINT` is set: a managed identity endpoint other than IMDS exists.
    pub managed_identity_endpoint: bool,
    /// `AKS_PATCH_MANAGED_IDENTITY` is `1`/`true`: IMDS may be asked in `--auth auto`.
    pub managed_identity_opt_in: bool,
    /// `PATH` for the processes aks-patch starts (`az`); `None` inherits aks-patch's own.
    pub path: Option<OsString>,
    /// Where aks-patch keeps its own state (known_hosts, scans, run records):
    /// `AKS_PATCH_STATE_DIR`, else `$XDG_STATE_HOME/aks-patch` (an absolute path, as the
    /// XDG base directory specification requires), else `$HOME/.local/state/aks-patch`.
    pub state_dir: PathBuf,
    /// Who this process runs as, for the lock's holder: `USER`, else `LOGNAME`, else
    /// `uid N` (the owner of `/proc/self`).
    pub user: String,
    /// This machine's name, for the lock's holder: the kernel's
    /// (`/proc/sys/kernel/hostname`, else `/etc/hostname`), else `HOSTNAME`, else
    /// `unknown-host`.
    pub host: String,
    /// Where the ssh control sockets live: `XDG_RUNTIME_DIR` when it is a directory with a
    /// short path, else `TMPDIR`, else `/tmp`.
    pub ssh_control_dir: PathBuf,
    /// `AKS_PATCH_LOG`: the log filter instead of the flags' (checked by the logging setup).
    pub log_filter: Option<String>,
    /// `NO_COLOR` is set and not empty.
    pub no_color: bool,
    /// `KUBERNETES_SERVICE_HOST`: this process runs in a pod of a Kubernetes cluster.
    pub kubernetes_service_host: Option<String>,
}

impl Settings {
    /// Whether this process runs in a pod (`KUBERNETES_SERVICE_HOST` is set): then, with no
    /// cluster named, aks-patch patches the pod's own cluster as its ServiceAccount.
    pub fn in_pod(&self) -> bool {
        self.kubernetes_service_host.is_some()
    }

    /// Read the process environment (and this machine's host name and user id).
    pub fn from_env() -> Settings {
        let mut s = Settings::from_lookup(|k| std::env::var(k).ok());
        // PATH may not be UTF-8; keep it as the OS gave it. Nor need NO_COLOR be.
        s.path = std::env::var_os(env::PATH);
        s.no_color = std::env::var_os(env::NO_COLOR).is_some_and(|v| !v.is_empty());
        // The kernel's host name wins over $HOSTNAME (a shell variable, rarely exported).
        if let Some(h) = ["/proc/sys/kernel/hostname", "/etc/hostname"].iter().find_map(|p| {
            std::fs::read_to_string(p)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        }) {
            s.host = h;
        }
        if s.user.is_empty() {
            use std::os::unix::fs::MetadataExt;
            s.user = match std::fs::metadata("/proc/self") {
                Ok(m) => format!("uid {}", m.uid()),
                Err(_) => "unknown-user".into(),
            };
        }
        s
    }

    /// Build from any lookup (a map in tests). Empty values count as unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Settings {
        let get = |k: &str| get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let ca_bundle = get(env::CA_BUNDLE)
            .map(|p| (PathBuf::from(p), env::CA_BUNDLE))
            .or_else(|| get(env::REQUESTS_CA_BUNDLE).map(|p| (PathBuf::from(p), env::REQUESTS_CA_BUNDLE)));
        Settings {
            arm_endpoint: get(env::ARM_ENDPOINT),
            arm_scope: get(env::ARM_SCOPE),
            ca_bundle,
            authority_host: get(env::AUTHORITY_HOST),
            subscription_id: get(env::SUBSCRIPTION_ID),
            tenant_id: get(env::TENANT_ID),
            client_id: get(env::CLIENT_ID),
            client_secret: get(env::CLIENT_SECRET).map(Secret::from),
            federated_token_file: get(env::FEDERATED_TOKEN_FILE).map(PathBuf::from),
            managed_identity_endpoint: get(env::IDENTITY_ENDPOINT).is_some() || get(env::MSI_ENDPOINT).is_some(),
            managed_identity_opt_in: get(env::MANAGED_IDENTITY)
                .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes")),
            path: get(env::PATH).map(OsString::from),
            state_dir: get(env::STATE_DIR)
                .map(PathBuf::from)
                .or_else(|| {
                    get(env::XDG_STATE_HOME)
                        .map(PathBuf::from)
                        .filter(|p| p.is_absolute())
                        .map(|p| p.join("aks-patch"))
                })
                .unwrap_or_else(|| {
                    get(env::HOME)
                        .map(PathBuf::from)
                        .unwrap_or_else(|| PathBuf::from("."))
                        .join(".local/state/aks-patch")
                }),
            user: get(env::USER).or_else(|| get(env::LOGNAME)).unwrap_or_default(),
            host: get(env::HOSTNAME).unwrap_or_else(|| "unknown-host".into()),
            ssh_control_dir: get(env::XDG_RUNTIME_DIR)
                .map(PathBuf::from)
                .filter(|d| d.as_os_str().len() < MAX_CONTROL_DIR_LEN && d.is_dir())
                .or_else(|| get(env::TMPDIR).map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("/tmp")),
            log_filter: get(env::LOG),
            no_color: get(env::NO_COLOR).is_some(),
            kubernetes_service_host: get(env::KUBERNETES_SERVICE_HOST),
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("arm_endpoint", &self.arm_endpoint)
            .field("arm_scope", &self.arm_scope)
            .field("ca_bundle", &self.ca_bundle)
            .field("authority_host", &self.authority_host)
            .field("subscription_id", &self.subscription_id)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .field("federated_token_file", &self.federated_token_file)
            .field("managed_identity_endpoint", &self.managed_identity_endpoint)
            .field("managed_identity_opt_in", &self.managed_identity_opt_in)
            .field("path", &self.path)
            .field("state_dir", &self.state_dir)
            .field("user", &self.user)
            .field("host", &self.host)
            .field("ssh_control_dir", &self.ssh_control_dir)
            .field("log_filter", &self.log_filter)
            .field("no_color", &self.no_color)
            .field("kubernetes_service_host", &self.kubernetes_service_host)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> Settings {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn ca_bundle_prefers_ours_then_requests() {
        let s = lookup(&[(env::REQUESTS_CA_BUNDLE, "/b.pem")]);
        assert_eq!(s.ca_bundle, Some((PathBuf::from("/b.pem"), env::REQUESTS_CA_BUNDLE)));
        let s = lookup(&[(env::REQUESTS_CA_BUNDLE, "/b.pem"), (env::CA_BUNDLE, "/a.pem")]);
        assert_eq!(s.ca_bundle, Some((PathBuf::from("/a.pem"), env::CA_BUNDLE)));
    }

    #[test]
    fn state_dir_honours_xdg_state_home() {
        let s = lookup(&[(env::HOME, "/home/alice")]);
        assert_eq!(s.state_dir, PathBuf::from("/home/alice/.local/state/aks-patch"));
        let s = lookup(&[(env::HOME, "/home/alice"), (env::XDG_STATE_HOME, "/var/state/alice")]);
        assert_eq!(s.state_dir, PathBuf::from("/var/state/alice/aks-patch"));
        // The specification says to ignore a relative path.
        let s = lookup(&[(env::HOME, "/home/alice"), (env::XDG_STATE_HOME, "state")]);
        assert_eq!(s.state_dir, PathBuf::from("/home/alice/.local/state/aks-patch"));
        let s = lookup(&[
            (env::XDG_STATE_HOME, "/var/state/alice"),
            (env::STATE_DIR, "/srv/aks-patch"),
        ]);
        assert_eq!(s.state_dir, PathBuf::from("/srv/aks-patch"), "ours wins");
    }

    #[test]
    fn user_host_and_ssh_control_dir() {
        let s = lookup(&[(env::LOGNAME, "bob"), (env::HOSTNAME, "box")]);
        assert_eq!((s.user.as_str(), s.host.as_str()), ("bob", "box"));
        let s = lookup(&[(env::USER, "alice"), (env::LOGNAME, "bob")]);
        assert_eq!((s.user.as_str(), s.host.as_str()), ("alice", "unknown-host"));

        let dir = std::env::temp_dir();
        let s = lookup(&[(env::XDG_RUNTIME_DIR, dir.to_str().unwrap()), (env::TMPDIR, "/var/tmp")]);
        assert_eq!(s.ssh_control_dir, dir);
        let s = lookup(&[(env::XDG_RUNTIME_DIR, "/nonexistent/run"), (env::TMPDIR, "/var/tmp")]);
        assert_eq!(s.ssh_control_dir, PathBuf::from("/var/tmp"), "not a directory");
        let long = format!("/{}", "x".repeat(80));
        let s = lookup(&[(env::XDG_RUNTIME_DIR, &long)]);
        assert_eq!(s.ssh_control_dir, PathBuf::from("/tmp"), "too long for a socket path");
    }

    #[test]
    fn from_env_knows_this_machine() {
        let s = Settings::from_env();
        assert!(!s.user.is_empty() && !s.host.is_empty(), "{s:?}");
        if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            assert_eq!(s.host, h.trim(), "the kernel's host name");
        }
    }

    #[test]
    fn empty_values_are_unset_and_secrets_are_not_printed() {
        let s = lookup(&[
            (env::CLIENT_SECRET, "hunter2-very-secret"),
            (env::SUBSCRIPTION_ID, "  "),
            (env::MSI_ENDPOINT, "http://x"),
            (env::MANAGED_IDENTITY, "TRUE"),
        ]);
        assert!(s.subscription_id.is_none());
        assert!(s.managed_identity_endpoint && s.managed_identity_opt_in);
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
    }
}
