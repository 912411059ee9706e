//! The kubeconfigs `listClusterUserCredential` / `listClusterAdminCredential` return, and
//! the one in the state directory.

use crate::tokens::{AKS_CLIENT_APP, AKS_SERVER_APP};
use crate::Shared;

/// A kubeconfig for the emulated API server, as `listClusterUserCredential` returns it.
pub fn kubeconfig(shared: &Shared, admin: bool) -> String {
    use base64::Engine;
    let ep = shared.endpoints();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&shared.ca.ca_pem);
    let cluster = &shared.scenario.cluster.name;
    let (user, token) = if admin {
        (
            format!("clusterAdmin_{}_{}", shared.scenario.resource_group, cluster),
            &shared.tokens.kube_admin,
        )
    } else {
        (
            format!("clusterUser_{}_{}", shared.scenario.resource_group, cluster),
            &shared.tokens.kube_user,
        )
    };
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {b64}\n    server: {server}\n  name: {cluster}\ncontexts:\n- context:\n    cluster: {cluster}\n    user: {user}\n  name: {cluster}\ncurrent-context: {cluster}\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n    token: {token}\n",
        server = ep.kube_url
    )
}

/// The user kubeconfig `listClusterUserCredential` returns on an Entra ID cluster: with
/// `exec`, a `kubelogin get-token` exec user (device code login by default); otherwise the
/// legacy `azure` auth-provider (`format=azure`), which current clients no longer support.
pub fn entra_kubeconfig(shared: &Shared, exec: bool) -> String {
    use base64::Engine;
    let ep = shared.endpoints();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&shared.ca.ca_pem);
    let cluster = &shared.scenario.cluster.name;
    let user = format!("clusterUser_{}_{}", shared.scenario.resource_group, cluster);
    let tenant = &shared.scenario.tenant_id;
    let user_body = if exec {
        format!(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      args:\n      - get-token\n      - --environment\n      - AzurePublicCloud\n      - --server-id\n      - {AKS_SERVER_APP}\n      - --client-id\n      - {AKS_CLIENT_APP}\n      - --tenant-id\n      - {tenant}\n      - --login\n      - devicecode\n      command: kubelogin\n      env: null\n      installHint: |2\n\n        kubelogin is not installed which is required to connect to AAD enabled cluster.\n\n        To learn more, please go to https://aka.ms/aks/kubelogin\n      provideClusterInfo: false\n"
        )
    } else {
        format!(
            "    auth-provider:\n      config:\n        apiserver-id: {AKS_SERVER_APP}\n        client-id: {AKS_CLIENT_APP}\n        config-mode: '1'\n        environment: AzurePublicCloud\n        tenant-id: {tenant}\n      name: azure\n"
        )
    };
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {b64}\n    server: {server}\n  name: {cluster}\ncontexts:\n- context:\n    cluster: {cluster}\n    user: {user}\n  name: {cluster}\ncurrent-context: {cluster}\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n{user_body}",
        server = ep.kube_url
    )
}
