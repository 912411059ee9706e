//! The tokens the emulator issues and accepts: ARM bearer tokens, Entra ID access tokens
//! (for ARM and for the AKS server application) and the kubeconfigs' static tokens. Never
//! printed by the emulator's logs: events name an Entra token by its number.

use crate::rbac;
use crate::scenario;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// The AKS Entra server application: the audience of the tokens an Entra ID cluster's API
/// server accepts (`kubelogin --server-id`).
pub const AKS_SERVER_APP: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";

/// An Entra access token the emulator issued (never printed: events name it by `seq`).
#[derive(Debug, Clone)]
pub struct EntraToken {
    /// 1, 2, ... in issue order.
    pub seq: u64,
    /// The application the token is for (`aud`), e.g. [`AKS_SERVER_APP`].
    pub audience: String,
    /// Who it was issued to: the Azure CLI's user or the service principal's client id.
    pub principal: String,
    /// Unix seconds.
    pub expires_on: i64,
    /// Whether the API server has seen it yet.
    pub used: bool,
}

/// Why the API server refused an Entra token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntraRefusal {
    Expired,
    WrongAudience,
}

/// Tokens the emulator issues and accepts. Never printed by the emulator's logs.
pub struct Tokens {
    /// Entra tokens for other audiences than ARM (the AKS server application), by value.
    pub entra: Mutex<BTreeMap<String, EntraToken>>,
    /// The Azure CLI stand-in's current token for the AKS server application, and its expiry.
    pub cli_aks: Mutex<Option<(String, i64)>>,
    /// ARM bearer tokens currently valid (the `az` stand-in and the Entra endpoint hand these out).
    pub arm: Mutex<Vec<String>>,
    /// The token in the user kubeconfig.
    pub kube_user: String,
    /// The token in the admin kubeconfig.
    pub kube_admin: String,
    /// The service principal the Entra endpoint accepts (client credentials).
    pub client_id: String,
    pub client_secret: String,
    /// The expired-token fault: the Entra tokens issued so far (numbers up to this one) have
    /// expired, and so have the kubeconfigs' tokens; tokens issued afterwards work.
    expired_through: Mutex<Option<u64>>,
}

impl Tokens {
    pub(crate) fn new() -> Tokens {
        Tokens {
            entra: Mutex::new(BTreeMap::new()),
            cli_aks: Mutex::new(None),
            arm: Mutex::new(vec![format!("sim-arm-{}", uuid::Uuid::new_v4().simple())]),
            kube_user: format!("sim-kube-user-{}", uuid::Uuid::new_v4().simple()),
            kube_admin: format!("sim-kube-admin-{}", uuid::Uuid::new_v4().simple()),
            client_id: "5f0e7b5c-aks5-sim0-0000-c11e47000001"
                .replace("aks5", "a5a5")
                .replace("sim0", "5150"),
            client_secret: format!("sim-secret-{}", uuid::Uuid::new_v4().simple()),
            expired_through: Mutex::new(None),
        }
    }

    /// The expired-token fault: every Kubernetes API token issued so far expires (the
    /// kubeconfigs' and the Entra tokens issued until now); `false` clears it.
    pub fn expire_issued(&self, on: bool) {
        let last = self.entra.lock().unwrap_or_else(|p| p.into_inner()).len() as u64;
        *self.expired_through.lock().unwrap_or_else(|p| p.into_inner()) = on.then_some(last);
    }

    /// Whether the expired-token fault has expired `token` (issued before the fault).
    pub fn expired_by_fault(&self, token: &str) -> bool {
        let Some(through) = *self.expired_through.lock().unwrap_or_else(|p| p.into_inner()) else {
            return false;
        };
        if token == self.kube_user || token == self.kube_admin {
            return true;
        }
        self.entra
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .is_some_and(|t| t.seq <= through)
    }

    /// The current ARM token (what `az account get-access-token` prints).
    pub fn current_arm(&self) -> String {
        self.arm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last()
            .cloned()
            .unwrap_or_default()
    }

    /// Issue a new ARM token and accept it from now on.
    pub fn issue_arm(&self) -> String {
        let t = format!("sim-arm-{}", uuid::Uuid::new_v4().simple());
        self.arm.lock().unwrap_or_else(|p| p.into_inner()).push(t.clone());
        t
    }

    pub fn arm_valid(&self, token: &str) -> bool {
        self.arm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|t| t == token)
    }

    /// Issue an Entra token for `audience` to `principal`, living `lifetime_seconds`.
    /// Returns the token and its expiry (unix seconds).
    pub fn issue_entra(&self, audience: &str, principal: &str, lifetime_seconds: u64) -> (String, i64) {
        let token = format!("sim-entra-{}", uuid::Uuid::new_v4().simple());
        let expires_on = crate::time::unix_now() + lifetime_seconds as i64;
        let mut map = self.entra.lock().unwrap_or_else(|p| p.into_inner());
        let seq = map.len() as u64 + 1;
        map.insert(
            token.clone(),
            EntraToken {
                seq,
                audience: audience.to_string(),
                principal: principal.to_string(),
                expires_on,
                used: false,
            },
        );
        (token, expires_on)
    }

    /// The Entra token `token` as the API server checks it: `None` when it is not one the
    /// emulator issued; else the token (marked used; `first` says whether this is its first
    /// use) or why it is refused.
    pub fn check_entra(&self, token: &str) -> Option<Result<(EntraToken, bool), (EntraToken, EntraRefusal)>> {
        let mut map = self.entra.lock().unwrap_or_else(|p| p.into_inner());
        let t = map.get_mut(token)?;
        if !t.audience.eq_ignore_ascii_case(AKS_SERVER_APP) {
            return Some(Err((t.clone(), EntraRefusal::WrongAudience)));
        }
        if t.expires_on <= crate::time::unix_now() {
            return Some(Err((t.clone(), EntraRefusal::Expired)));
        }
        let first = !t.used;
        t.used = true;
        Some(Ok((t.clone(), first)))
    }

    pub fn kube_valid(&self, token: &str) -> bool {
        token == self.kube_user || token == self.kube_admin
    }

    /// The workload identity's federated (service account) token the Entra endpoint accepts
    /// as `client_assertion`, issued by the API server at `kube_url`. Derived from the client
    /// secret so it needs no state of its own.
    pub fn federated_token(&self, kube_url: &str) -> String {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let header = b64(r#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = b64(&serde_json::json!({
            "aud": ["api://AzureADTokenExchange"],
            "iss": format!("{kube_url}/oidc"),
            "sub": "system:serviceaccount:kube-system:aks-patch",
        })
        .to_string());
        let sig = &crate::ids::stable_hex(&self.client_secret)[..43];
        format!("{header}.{claims}.{sig}")
    }

    /// Who a Kubernetes API bearer token authenticates as (None: not a token of ours).
    pub fn kube_identity(&self, token: &str, access: &scenario::Access) -> Option<rbac::Identity> {
        if token == self.kube_admin {
            return Some(rbac::Identity::master());
        }
        if token != self.kube_user {
            return None;
        }
        Some(match &access.user {
            None => rbac::Identity::master(),
            Some(u) => user_identity(u),
        })
    }
}

/// The scenario's restricted user (`access.user`), whichever token it signs in with.
pub fn user_identity(u: &scenario::UserAccess) -> rbac::Identity {
    let mut groups = u.groups.clone();
    groups.push("system:authenticated".into());
    rbac::Identity {
        username: u.username.clone(),
        groups,
        role: u.cluster_role.clone(),
        rules: Some(u.rules.clone()),
    }
}

/// The AKS-managed Entra ID public client (`kubelogin --client-id`, the `azure`
/// auth-provider's `client-id`).
pub const AKS_CLIENT_APP: &str = "80faf920-1908-4b52-b5ef-a8e7bedfc67a";
