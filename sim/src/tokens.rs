//! The tokens the emulator issues and accepts: ARM bearer tokens, Entra ID access tokens
//! (for ARM and for the AKS server application), the kubeconfigs' static tokens and the
//! ServiceAccount tokens of the TokenRequest API (JWTs the emulator signs). Never printed by
//! the emulator's logs: events name an Entra token by its number, a ServiceAccount token by
//! its ServiceAccount and `jti`.

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
    /// The key ServiceAccount tokens are signed with (HMAC-SHA256), new at every start.
    service_account_key: ring::hmac::Key,
    /// The `jti`s of the ServiceAccount tokens the API server has seen (first use is logged).
    service_account_seen: Mutex<std::collections::HashSet<String>>,
}

/// The issuer of the ServiceAccount tokens (the cluster's OIDC issuer URL).
pub fn service_account_issuer(kube_url: &str) -> String {
    format!("{kube_url}/oidc")
}

/// The API server's audiences (`--api-audiences`): a ServiceAccount token is accepted only
/// when it is for one of these; a TokenRequest without audiences gets them all.
pub fn api_audiences(kube_url: &str) -> Vec<String> {
    vec![
        kube_url.to_string(),
        "https://kubernetes.default.svc.cluster.local".to_string(),
    ]
}

/// The object a ServiceAccount token is bound to (`spec.boundObjectRef`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundObject {
    /// `Pod` or `Secret`.
    pub kind: String,
    pub name: String,
    pub uid: String,
}

/// What a ServiceAccount token says (its JWT claims), as issued and as checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountClaims {
    pub namespace: String,
    pub name: String,
    /// The ServiceAccount's uid when the token was issued: a re-created one is another.
    pub uid: String,
    pub audiences: Vec<String>,
    /// Unix seconds.
    pub issued_at: i64,
    pub expires_at: i64,
    pub jti: String,
    pub bound: Option<BoundObject>,
}

impl ServiceAccountClaims {
    /// `system:serviceaccount:NS:NAME`.
    pub fn username(&self) -> String {
        rbac::service_account_username(&self.namespace, &self.name)
    }

    /// The JWT claims, as kube-apiserver writes them.
    fn to_json(&self, issuer: &str) -> serde_json::Value {
        let mut k8s = serde_json::json!({
            "namespace": self.namespace,
            "serviceaccount": {"name": self.name, "uid": self.uid},
        });
        if let Some(b) = &self.bound {
            k8s[b.kind.to_lowercase()] = serde_json::json!({"name": b.name, "uid": b.uid});
        }
        serde_json::json!({
            "aud": self.audiences,
            "exp": self.expires_at,
            "iat": self.issued_at,
            "iss": issuer,
            "jti": self.jti,
            "kubernetes.io": k8s,
            "nbf": self.issued_at,
            "sub": self.username(),
        })
    }

    fn from_json(v: &serde_json::Value) -> Option<ServiceAccountClaims> {
        let k = &v["kubernetes.io"];
        let s = |x: &serde_json::Value| x.as_str().map(str::to_string);
        let bound = ["pod", "secret"].iter().find_map(|kind| {
            let o = &k[*kind];
            Some(BoundObject {
                kind: if *kind == "pod" { "Pod" } else { "Secret" }.to_string(),
                name: s(&o["name"])?,
                uid: s(&o["uid"])?,
            })
        });
        Some(ServiceAccountClaims {
            namespace: s(&k["namespace"])?,
            name: s(&k["serviceaccount"]["name"])?,
            uid: s(&k["serviceaccount"]["uid"])?,
            audiences: match &v["aud"] {
                serde_json::Value::String(a) => vec![a.clone()],
                a => a.as_array()?.iter().filter_map(&s).collect(),
            },
            issued_at: v["iat"].as_i64()?,
            expires_at: v["exp"].as_i64()?,
            jti: s(&v["jti"]).unwrap_or_default(),
            bound,
        })
    }
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
            service_account_key: {
                let secret: [u8; 32] = rand::random();
                ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret)
            },
            service_account_seen: Mutex::new(Default::default()),
        }
    }

    /// A signed ServiceAccount token (a JWT) carrying `claims`.
    pub fn sign_service_account_token(&self, issuer: &str, claims: &ServiceAccountClaims) -> String {
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let header = b64(br#"{"alg":"HS256","kid":"aks-sim","typ":"JWT"}"#);
        let body = b64(claims.to_json(issuer).to_string().as_bytes());
        let signed = format!("{header}.{body}");
        let sig = ring::hmac::sign(&self.service_account_key, signed.as_bytes());
        format!("{signed}.{}", b64(sig.as_ref()))
    }

    /// The claims of a ServiceAccount token this emulator signed (`None`: not one of its
    /// tokens). Expiry, audience and the ServiceAccount itself are the caller's to check.
    pub fn verify_service_account_token(&self, token: &str) -> Option<ServiceAccountClaims> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (signed, sig) = token.rsplit_once('.')?;
        let (_, body) = signed.split_once('.')?;
        let sig = b64.decode(sig).ok()?;
        ring::hmac::verify(&self.service_account_key, signed.as_bytes(), &sig).ok()?;
        let claims: serde_json::Value = serde_json::from_slice(&b64.decode(body).ok()?).ok()?;
        ServiceAccountClaims::from_json(&claims)
    }

    /// Whether this is the first time the API server sees the token `jti` (then remembered).
    pub fn first_use_of_service_account_token(&self, jti: &str) -> bool {
        self.service_account_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(jti.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> ServiceAccountClaims {
        ServiceAccountClaims {
            namespace: "aks-patch".into(),
            name: "aks-patch".into(),
            uid: "5b1d9a34-0000-4000-a000-000000000001".into(),
            audiences: vec!["https://kubernetes.default.svc.cluster.local".into()],
            issued_at: 1_700_000_000,
            expires_at: 1_700_003_600,
            jti: "j1".into(),
            bound: Some(BoundObject {
                kind: "Pod".into(),
                name: "aks-patch-1".into(),
                uid: "p-uid".into(),
            }),
        }
    }

    #[test]
    fn service_account_tokens_are_jwts_with_the_apiservers_claims() {
        use base64::Engine;
        let t = Tokens::new();
        let token = t.sign_service_account_token("https://127.0.0.1:6443/oidc", &claims());
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let body: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(parts[1])
                .unwrap(),
        )
        .unwrap();
        assert_eq!(body["sub"], "system:serviceaccount:aks-patch:aks-patch");
        assert_eq!(body["kubernetes.io"]["serviceaccount"]["name"], "aks-patch");
        assert_eq!(body["kubernetes.io"]["pod"]["name"], "aks-patch-1");
        assert_eq!(body["exp"], 1_700_003_600);
        assert_eq!(t.verify_service_account_token(&token), Some(claims()));
    }

    #[test]
    fn a_tampered_or_foreign_token_is_not_accepted() {
        let t = Tokens::new();
        let token = t.sign_service_account_token("iss", &claims());
        let mut other = claims();
        other.name = "cluster-admin".into();
        let forged = t.sign_service_account_token("iss", &other);
        let (head, _) = forged.rsplit_once('.').unwrap();
        let (_, sig) = token.rsplit_once('.').unwrap();
        assert_eq!(t.verify_service_account_token(&format!("{head}.{sig}")), None);
        assert_eq!(
            Tokens::new().verify_service_account_token(&token),
            None,
            "another emulator's key"
        );
        assert_eq!(t.verify_service_account_token(&t.kube_user), None);
    }
}
