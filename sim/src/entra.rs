//! The Entra ID token endpoint, served beside ARM (`AZURE_AUTHORITY_HOST` is the ARM
//! URL): `POST /{tenant}/oauth2/v2.0/token` with the client credentials grant (the service
//! principal's secret, or the federated token in the state directory), for ARM or the AKS
//! server application, and the tenant's OpenID configuration. Errors are Entra's
//! (`AADSTS...`).

use crate::tokens::AKS_SERVER_APP;
use crate::Shared;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Scopes (or v1 resources) the token endpoint and the `az` stand-in accept: ARM's.
const ARM_AUDIENCES: [&str; 2] = ["https://management.azure.com", "https://management.core.windows.net"];

const SECONDS_PER_TOKEN: i64 = 3599;

/// The audience of the tokens a workload identity presents (`AZURE_FEDERATED_TOKEN_FILE`).
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

fn no_federated_record(what: &str) -> Response {
    entra_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        700211,
        &format!("No matching federated identity record found for presented assertion {what}. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion."),
    )
}

/// A ServiceAccount token of the cluster (TokenRequest) as a workload identity's
/// `client_assertion`, and Entra's answer when it refuses it: Entra checks its signature (the cluster's, as through its OIDC
/// issuer), its time, its audience and its subject against the federated credentials; not
/// whether the ServiceAccount still exists.
fn refuse_service_account_assertion(shared: &Shared, assertion: &str) -> Option<Response> {
    let Some(c) = shared.tokens.verify_service_account_token(assertion) else {
        return Some(no_federated_record("issuer"));
    };
    let now = jiff::Timestamp::now();
    if c.expires_at <= now.as_second() {
        let at = |s: i64| {
            jiff::Timestamp::from_second(s)
                .map(|t| t.strftime("%m/%d/%Y %H:%M:%S").to_string())
                .unwrap_or_default()
        };
        return Some(entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700024,
            &format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
                at(now.as_second()),
                at(c.issued_at),
                at(c.expires_at)
            ),
        ));
    }
    if !c.audiences.iter().any(|a| a == TOKEN_EXCHANGE_AUDIENCE) {
        return Some(entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700212,
            &format!("No matching federated identity record found for presented assertion audience '{}'. Please note that the matching is done using a case-sensitive comparison. Check your federated identity credential Subject, Audience and Issuer against the presented assertion.", c.audiences.join(",")),
        ));
    }
    let subject = c.username();
    if !shared.scenario.access.federated_subjects().contains(&subject) {
        return Some(entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700213,
            &format!("No matching federated identity record found for presented assertion subject '{subject}'. Please note that the matching is done using a case-sensitive comparison. Check your federated identity credential Subject, Audience and Issuer against the presented assertion."),
        ));
    }
    None
}

pub fn entra_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let now = jiff::Timestamp::now();
    let trace = uuid::Uuid::new_v4();
    let correlation = uuid::Uuid::new_v4();
    (
        status,
        axum::Json(json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {}",
                now.strftime("%Y-%m-%d %H:%M:%SZ")
            ),
            "error_codes": [code],
            "timestamp": now.strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
            "trace_id": trace.to_string(),
            "correlation_id": correlation.to_string(),
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        })),
    )
        .into_response()
}

fn is_arm_audience(scope: &str) -> bool {
    let s = scope.trim_end_matches("/.default").trim_end_matches('/');
    ARM_AUDIENCES.iter().any(|a| s.eq_ignore_ascii_case(a))
}

/// `6dae42f8-…/.default` (or its `api://` form): the AKS Entra server application.
fn is_aks_audience(scope: &str) -> bool {
    let s = scope.trim_end_matches("/.default").trim_end_matches('/');
    let s = s.strip_prefix("api://").unwrap_or(s);
    s.eq_ignore_ascii_case(AKS_SERVER_APP)
}

/// `POST /{tenant}/oauth2/v2.0/token` with the client credentials grant.
pub fn token_endpoint(shared: &Shared, tenant: &str, body: &[u8]) -> Response {
    let form: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if !tenant.eq_ignore_ascii_case(&shared.scenario.tenant_id) {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
        );
    }
    if field("grant_type") != Some("client_credentials") {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type: aks-sim supports client_credentials only.",
        );
    }
    let Some(client_id) = field("client_id").filter(|c| !c.is_empty()) else {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    let Some(scope) = field("scope").filter(|c| !c.is_empty()) else {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        );
    };
    if !scope.ends_with("/.default") {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            &format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
        );
    }
    if !client_id.eq_ignore_ascii_case(&shared.tokens.client_id) {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."),
        );
    }
    match (field("client_secret"), field("client_assertion")) {
        (Some(secret), _) => {
            if secret != shared.tokens.client_secret {
                return entra_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000215,
                    &format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."),
                );
            }
        }
        (None, Some(assertion)) => {
            let expected = shared.tokens.federated_token(&shared.endpoints().kube_url);
            if field("client_assertion_type") != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
                return no_federated_record("issuer");
            }
            if assertion.trim() != expected {
                if let Some(refused) = refuse_service_account_assertion(shared, assertion.trim()) {
                    return refused;
                }
            }
        }
        (None, None) => {
            return entra_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        }
    }
    if scope.split(' ').count() == 1 && is_aks_audience(scope) {
        let lifetime = shared.scenario.timing.token_lifetime_seconds;
        let (token, _) = shared.tokens.issue_entra(AKS_SERVER_APP, client_id, lifetime);
        return ok(json!({
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        }));
    }
    if scope.split(' ').any(|s| !is_arm_audience(s)) {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            &format!("The resource principal named {scope} was not found in the tenant named {tenant}. aks-sim issues tokens for Azure Resource Manager (https://management.azure.com/.default) and the AKS server application (6dae42f8-4368-4678-94ff-3960e28e3630/.default) only."),
        );
    }
    ok(json!({
        "token_type": "Bearer",
        "expires_in": SECONDS_PER_TOKEN,
        "ext_expires_in": SECONDS_PER_TOKEN,
        "access_token": shared.tokens.issue_arm(),
    }))
}

pub fn openid_configuration(shared: &Shared, tenant: &str) -> Response {
    let base = &shared.endpoints().arm_url;
    ok(json!({
        "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base}/{}/v2.0", shared.scenario.tenant_id),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/{tenant}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "tid"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "aks-sim.local",
    }))
}

fn ok(body: serde_json::Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}
