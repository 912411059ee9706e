//! The emulated Azure Resource Manager, driven over real TLS (trusting only the emulator's
//! CA) with reqwest, the `az` stand-in run as a process, and azure_identity's credentials.

use crate::common::{ca_client, Emulator};
use aks_sim::{Fault, Scenario};
use azure_core::credentials::TokenCredential;
use base64::Engine;
use serde_json::Value;
use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;

const API: &str = "api-version=2026-08-01";
/// Compute and ARM's own resources publish their own api-versions (sim/src/api_versions.rs).
const COMPUTE_API: &str = "api-version=2024-11-01";
const RESOURCES_API: &str = "api-version=2022-12-01";
const ARM_SCOPE: &str = "https://management.azure.com/.default";

const SCENARIO: &str = r#"
subscriptionId: 11111111-2222-3333-4444-555555555555
tenantId: 99999999-8888-7777-6666-555555555555
resourceGroup: rg-arm-test
extraClusters: 3
armPageSize: 2
cluster:
  name: aks-arm-test
  location: northeurope
  kubernetesVersion: 1.31.5
  nodeOSUpgradeChannel: NodeImage
  adminUsername: opsadmin
pools:
  - name: system
    mode: System
    count: 1
    zones: ["1", "2"]
    nodeImageVersion: AKSUbuntu-2204gen2containerd-202501.12.0
    latestNodeImageVersion: AKSUbuntu-2204gen2containerd-202503.05.0
  - name: user
    count: 2
    zones: ["1", "2"]
    sshAccess: Disabled
    nodeImageVersion: AKSUbuntu-2204gen2containerd-202501.12.0
  - name: win
    osType: Windows
    count: 1
    nodeImageVersion: AKSWindows-2022-containerd-20348.3207.250214
    latestNodeImageVersion: AKSWindows-2022-containerd-20348.3328.250314
"#;

/// The emulator, and an HTTPS client for its ARM.
struct Env {
    emu: Emulator,
    http: reqwest::Client,
}

impl std::ops::Deref for Env {
    type Target = Emulator;
    fn deref(&self) -> &Emulator {
        &self.emu
    }
}

impl Env {
    async fn start() -> Env {
        Env::start_with(SCENARIO).await
    }

    async fn start_with(yaml: &str) -> Env {
        let emu = Emulator::start_yaml(yaml, "arm test").await;
        let http = emu.https();
        Env { emu, http }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.endpoints().arm_url)
    }

    fn sub(&self) -> String {
        self.sim.endpoints().subscription_id.clone()
    }

    fn mc(&self) -> String {
        let ep = self.sim.endpoints();
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerService/managedClusters/{}",
            ep.subscription_id, ep.resource_group, ep.cluster_name
        )
    }

    fn token(&self) -> String {
        self.sim.shared.tokens.current_arm()
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        token: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let url = if path_and_query.starts_with("https://") {
            path_and_query.to_string()
        } else {
            self.url(path_and_query)
        };
        let mut req = self.http.request(method, url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request reaches aks-sim");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.expect("body");
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (status, headers, json)
    }

    async fn get(&self, path_and_query: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        let token = self.token();
        self.call(reqwest::Method::GET, path_and_query, Some(&token)).await
    }

    async fn get_ok(&self, path_and_query: &str) -> Value {
        let (status, _, body) = self.get(path_and_query).await;
        assert_eq!(status, 200, "GET {path_and_query}: {body}");
        body
    }
}

/// A client that trusts the emulator's CA and nothing else.
fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_pools_machines_and_maintenance() {
    skip_unless_root!();
    let env = Env::start().await;
    let mc = env.mc();
    let (status, headers, c) = env.get(&format!("{mc}?{API}")).await;
    assert_eq!(status, 200, "{c}");
    for h in [
        "x-ms-request-id",
        "x-ms-correlation-request-id",
        "x-ms-ratelimit-remaining-subscription-reads",
    ] {
        assert!(headers.contains_key(h), "missing header {h}");
    }
    assert_eq!(c["id"], mc);
    assert_eq!(c["name"], "aks-arm-test");
    assert_eq!(c["location"], "northeurope");
    let p = &c["properties"];
    assert_eq!(p["provisioningState"], "Succeeded");
    assert_eq!(p["powerState"]["code"], "Running");
    assert_eq!(p["kubernetesVersion"], "1.31.5");
    assert_eq!(p["currentKubernetesVersion"], "1.31.5");
    assert_eq!(p["nodeResourceGroup"], "MC_rg-arm-test_aks-arm-test_northeurope");
    assert!(p["fqdn"].as_str().unwrap().ends_with(".hcp.northeurope.azmk8s.io"));
    assert!(p["fqdn"]
        .as_str()
        .unwrap()
        .starts_with(p["dnsPrefix"].as_str().unwrap()));
    assert_eq!(p["linuxProfile"]["adminUsername"], "opsadmin");
    assert!(p["linuxProfile"]["ssh"]["publicKeys"].is_array());
    assert_eq!(p["autoUpgradeProfile"]["nodeOSUpgradeChannel"], "NodeImage");
    assert_eq!(p["networkProfile"]["networkPlugin"], "azure");
    assert_eq!(c["identity"]["type"], "SystemAssigned");
    let profiles = p["agentPoolProfiles"].as_array().unwrap();
    assert_eq!(profiles.len(), 3);
    let system = &profiles[0];
    assert_eq!(system["name"], "system");
    assert_eq!(system["count"], 1);
    assert_eq!(system["mode"], "System");
    assert_eq!(system["osType"], "Linux");
    assert_eq!(system["osSKU"], "Ubuntu");
    assert_eq!(system["nodeImageVersion"], "AKSUbuntu-2204gen2containerd-202501.12.0");
    assert_eq!(system["orchestratorVersion"], "1.31.5");
    assert_eq!(system["securityProfile"]["sshAccess"], "LocalUser");
    assert_eq!(system["availabilityZones"], serde_json::json!(["1", "2"]));
    assert!(system["upgradeSettings"]["maxSurge"].is_string());
    assert_eq!(profiles[1]["securityProfile"]["sshAccess"], "Disabled");
    assert_eq!(profiles[2]["osType"], "Windows");
    assert_eq!(profiles[2]["osSKU"], "Windows2022");

    // Same object through case-insensitive provider, type and names.
    let lower = mc
        .replace(
            "Microsoft.ContainerService/managedClusters",
            "microsoft.containerservice/MANAGEDCLUSTERS",
        )
        .replace("rg-arm-test", "RG-ARM-TEST");
    assert_eq!(env.get_ok(&format!("{lower}?{API}")).await["name"], "aks-arm-test");

    let pools = env.get_ok(&format!("{mc}/agentPools?{API}")).await;
    let names: Vec<&str> = pools["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["system", "user", "win"]);
    assert_eq!(pools["value"][1]["id"], format!("{mc}/agentPools/user"));
    assert_eq!(pools["value"][1]["properties"]["count"], 2);
    let win = env.get_ok(&format!("{mc}/agentPools/win?{API}")).await;
    assert_eq!(win["properties"]["osType"], "Windows");
    assert_eq!(win["type"], "Microsoft.ContainerService/managedClusters/agentPools");

    let up = env
        .get_ok(&format!("{mc}/agentPools/system/upgradeProfiles/default?{API}"))
        .await;
    assert_eq!(up["name"], "default");
    assert_eq!(
        up["properties"]["latestNodeImageVersion"],
        "AKSUbuntu-2204gen2containerd-202503.05.0"
    );
    let up = env
        .get_ok(&format!("{mc}/agentPools/user/upgradeProfiles/default?{API}"))
        .await;
    assert_eq!(
        up["properties"]["latestNodeImageVersion"], "AKSUbuntu-2204gen2containerd-202501.12.0",
        "a pool without a newer image is already on the latest"
    );
    let (status, _, body) = env
        .get(&format!("{mc}/agentPools/nope/upgradeProfiles/default?{API}"))
        .await;
    assert_eq!(status, 404, "{body}");

    let machines = env.get_ok(&format!("{mc}/agentPools/user/machines?{API}")).await;
    let machines = machines["value"].as_array().unwrap();
    assert_eq!(machines.len(), 2);
    let user_nodes: Vec<_> = env.sim.shared.nodes.iter().filter(|n| n.pool == "user").collect();
    let node_rg = "MC_rg-arm-test_aks-arm-test_northeurope";
    for (m, n) in machines.iter().zip(&user_nodes) {
        assert_eq!(m["name"], n.name);
        assert_eq!(m["properties"]["network"]["ipAddresses"][0]["ip"], n.ip.to_string());
        assert_eq!(m["properties"]["network"]["ipAddresses"][0]["family"], "IPv4");
        let rid = m["properties"]["resourceId"].as_str().unwrap();
        assert!(
            rid.contains(&format!(
                "/resourceGroups/{node_rg}/providers/Microsoft.Compute/virtualMachineScaleSets/aks-user-"
            )),
            "{rid}"
        );
        assert!(rid.ends_with(&format!("/virtualMachines/{}", n.instance)), "{rid}");
        assert_eq!(m["zones"][0], n.zone.clone().unwrap());
    }

    let mcfg = env.get_ok(&format!("{mc}/maintenanceConfigurations?{API}")).await;
    assert_eq!(mcfg["value"][0]["name"], "aksManagedNodeOSUpgradeSchedule");
    let one = env
        .get_ok(&format!(
            "{mc}/maintenanceConfigurations/aksManagedNodeOSUpgradeSchedule?{API}"
        ))
        .await;
    let w = &one["properties"]["maintenanceWindow"];
    assert_eq!(w["schedule"]["weekly"]["intervalWeeks"], 1);
    assert!(w["durationHours"].as_i64().unwrap() >= 4);
    assert!(w["utcOffset"].is_string() && w["startTime"].is_string());

    // The scale sets in the node resource group: computer names are the node names.
    let rid = machines[0]["properties"]["resourceId"].as_str().unwrap();
    let vmss_path = rid.rsplit_once("/virtualMachines/").unwrap().0;
    let vms = env.get_ok(&format!("{vmss_path}/virtualMachines?{COMPUTE_API}")).await;
    let vms = vms["value"].as_array().unwrap();
    assert_eq!(vms.len(), 2);
    for (vm, n) in vms.iter().zip(&user_nodes) {
        assert_eq!(vm["properties"]["osProfile"]["computerName"], n.name);
        assert_eq!(vm["instanceId"], n.instance.to_string());
        assert_eq!(vm["type"], "Microsoft.Compute/virtualMachineScaleSets/virtualMachines");
        assert_eq!(vm["properties"]["provisioningState"], "Succeeded");
        assert_eq!(
            vm["id"].as_str().unwrap(),
            format!("{vmss_path}/virtualMachines/{}", n.instance)
        );
    }
    let win_node = env.sim.shared.nodes.iter().find(|n| n.pool == "win").unwrap();
    let win_vms = env
        .get_ok(&format!(
            "/subscriptions/{}/resourceGroups/{node_rg}/providers/Microsoft.Compute/virtualMachineScaleSets/akswin/virtualMachines?{COMPUTE_API}&$expand=instanceView",
            env.sub()
        ))
        .await;
    assert_eq!(
        win_vms["value"][0]["properties"]["osProfile"]["computerName"],
        win_node.name
    );
    assert_eq!(
        win_vms["value"][0]["properties"]["storageProfile"]["osDisk"]["osType"],
        "Windows"
    );
    assert_eq!(
        win_vms["value"][0]["properties"]["instanceView"]["statuses"][1]["code"],
        "PowerState/running"
    );

    let sub = env
        .get_ok(&format!("/subscriptions/{}?api-version=2022-12-01", env.sub()))
        .await;
    assert_eq!(sub["subscriptionId"], env.sub());
    assert_eq!(sub["state"], "Enabled");
    env.emu.shutdown().await;
}

async fn follow_pages(env: &Env, first: &str) -> (Vec<String>, usize) {
    let mut names = vec![];
    let mut pages = 0;
    let mut next = Some(first.to_string());
    while let Some(url) = next {
        let page = env.get_ok(&url).await;
        pages += 1;
        let value = page["value"].as_array().unwrap();
        names.extend(value.iter().map(|c| c["name"].as_str().unwrap().to_string()));
        next = page["nextLink"].as_str().map(str::to_string);
        if let Some(n) = &next {
            assert!(
                n.starts_with(&env.sim.endpoints().arm_url),
                "nextLink must be absolute: {n}"
            );
            assert!(n.contains("$skipToken="), "{n}");
            assert!(n.contains("api-version="), "{n}");
        }
        assert!(pages < 10, "paging does not end");
    }
    (names, pages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_come_in_arms_own_page_size_by_default() {
    skip_unless_root!();
    let env = Env::start_with(&SCENARIO.replace("armPageSize: 2\n", "")).await;
    let (names, pages) = follow_pages(
        &env,
        &format!(
            "/subscriptions/{}/providers/Microsoft.ContainerService/managedClusters?{API}",
            env.sub()
        ),
    )
    .await;
    assert_eq!(names.len(), 4);
    assert_eq!(pages, 1, "four clusters fit one page of ARM's size");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_with_next_link() {
    skip_unless_root!();
    let env = Env::start().await;
    let expected = ["aks-arm-test", "aks-extra-01", "aks-extra-02", "aks-extra-03"];
    let (names, pages) = follow_pages(
        &env,
        &format!(
            "/subscriptions/{}/providers/Microsoft.ContainerService/managedClusters?{API}",
            env.sub()
        ),
    )
    .await;
    assert_eq!(names, expected);
    assert_eq!(pages, 2);
    let (names, pages) = follow_pages(
        &env,
        &format!(
            "/subscriptions/{}/resourceGroups/rg-arm-test/providers/Microsoft.ContainerService/managedClusters?{API}",
            env.sub()
        ),
    )
    .await;
    assert_eq!(names, expected);
    assert_eq!(pages, 2);

    // An extra cluster is there, stopped and empty.
    let extra = env
        .get_ok(&format!(
            "/subscriptions/{}/resourceGroups/rg-arm-test/providers/Microsoft.ContainerService/managedClusters/aks-extra-02?{API}",
            env.sub()
        ))
        .await;
    assert_eq!(extra["properties"]["powerState"]["code"], "Stopped");

    let (status, _, body) = env
        .get(&format!(
            "/subscriptions/{}/providers/Microsoft.ContainerService/managedClusters?{API}&$skipToken=garbage!",
            env.sub()
        ))
        .await;
    assert_eq!(status, 400, "{body}");
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_base64_kubeconfigs() {
    skip_unless_root!();
    let env = Env::start().await;
    let token = env.token();
    for (op, admin, name) in [
        ("listClusterUserCredential", false, "clusterUser"),
        ("listClusterAdminCredential", true, "clusterAdmin"),
    ] {
        let (status, _, body) = env
            .call(reqwest::Method::POST, &format!("{}/{op}?{API}", env.mc()), Some(&token))
            .await;
        assert_eq!(status, 200, "{body}");
        let kc = &body["kubeconfigs"][0];
        assert_eq!(kc["name"], name);
        let yaml = base64::engine::general_purpose::STANDARD
            .decode(kc["value"].as_str().unwrap())
            .expect("base64");
        let yaml = String::from_utf8(yaml).unwrap();
        assert_eq!(yaml, aks_sim::kubeconfig(&env.sim.shared, admin));
        assert!(yaml.contains(&env.sim.endpoints().kube_url));
        let expected_token = if admin {
            &env.sim.shared.tokens.kube_admin
        } else {
            &env.sim.shared.tokens.kube_user
        };
        assert!(yaml.contains(expected_token.as_str()));
    }
    // GET is not how credentials are listed.
    let (status, _, body) = env.get(&format!("{}/listClusterUserCredential?{API}", env.mc())).await;
    assert_eq!(status, 405, "{body}");
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_arm_shapes() {
    skip_unless_root!();
    let env = Env::start().await;
    let mc = env.mc();
    let token = env.token();

    let (status, _, body) = env.get(&mc).await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), "MissingApiVersionParameter");
    assert_eq!(
        body["error"]["message"],
        "The api-version query parameter (?api-version=) is required for all requests."
    );

    let (status, headers, body) = env.call(reqwest::Method::GET, &format!("{mc}?{API}"), None).await;
    assert_eq!(status, 401);
    assert_eq!(error_code(&body), "AuthenticationFailed");
    assert_eq!(
        body["error"]["message"],
        "Authentication failed. The 'Authorization' header is missing."
    );
    assert!(headers.contains_key("www-authenticate"));

    let (status, _, body) = env
        .call(reqwest::Method::GET, &format!("{mc}?{API}"), Some("not-a-token"))
        .await;
    assert_eq!(status, 401);
    assert_eq!(error_code(&body), "InvalidAuthenticationToken");

    let (status, _, body) = env
        .call(
            reqwest::Method::GET,
            &format!("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-arm-test?{RESOURCES_API}"),
            Some(&token),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "SubscriptionNotFound");

    let (status, _, body) = env
        .get(&format!(
            "/subscriptions/{}/resourceGroups/rg-nope/providers/Microsoft.ContainerService/managedClusters/aks-arm-test?{API}",
            env.sub()
        ))
        .await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "ResourceGroupNotFound");
    assert_eq!(body["error"]["message"], "Resource group 'rg-nope' could not be found.");

    let (status, _, body) = env
        .get(&format!(
            "/subscriptions/{}/resourceGroups/rg-arm-test/providers/Microsoft.ContainerService/managedClusters/aks-nope?{API}",
            env.sub()
        ))
        .await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "ResourceNotFound");
    assert_eq!(
        body["error"]["message"],
        "The Resource 'Microsoft.ContainerService/managedClusters/aks-nope' under resource group 'rg-arm-test' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
    );

    let (status, _, body) = env
        .get(&format!(
            "/subscriptions/{}/resourceGroups/rg-arm-test/providers/Microsoft.ContainerService/noSuchType?{API}",
            env.sub()
        ))
        .await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "InvalidResourceType");

    // Fleet Manager is a type of its own, with its own api-versions; one cluster has no fleet.
    let fleets = format!(
        "/subscriptions/{}/resourceGroups/rg-arm-test/providers/Microsoft.ContainerService/fleets",
        env.sub()
    );
    let (status, _, body) = env.get(&format!("{fleets}?{API}")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_code(&body), "NoRegisteredProviderFound");
    assert_eq!(
        env.get_ok(&format!("{fleets}?api-version=2024-04-01")).await["value"],
        serde_json::json!([])
    );
    let (status, _, body) = env.get(&format!("{fleets}/f1?api-version=2024-04-01")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(error_code(&body), "ResourceNotFound");
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_and_5xx_then_success() {
    skip_unless_root!();
    let env = Env::start().await;
    let url = format!("{}?{API}", env.mc());
    env.sim
        .fault(Fault::ArmThrottle {
            count: 2,
            retry_after: 7,
        })
        .unwrap();
    for _ in 0..2 {
        let (status, headers, body) = env.get(&url).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(error_code(&body), "TooManyRequests");
        assert_eq!(headers.get("retry-after").unwrap(), "7");
    }
    assert_eq!(env.get_ok(&url).await["name"], "aks-arm-test");

    env.sim.fault(Fault::ArmError { count: 1, status: 503 }).unwrap();
    let (status, _, body) = env.get(&url).await;
    assert_eq!(status, 503);
    assert_eq!(error_code(&body), "ServiceUnavailable");
    assert_eq!(env.get_ok(&url).await["name"], "aks-arm-test");

    // An unauthenticated request does not use up an injected fault.
    env.sim
        .fault(Fault::ArmThrottle {
            count: 1,
            retry_after: 1,
        })
        .unwrap();
    let (status, _, _) = env.call(reqwest::Method::GET, &url, None).await;
    assert_eq!(status, 401);
    let (status, _, _) = env.get(&url).await;
    assert_eq!(status, 429);
    env.emu.shutdown().await;
}

fn az(state_dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(state_dir.join("bin/az"))
        .args(args)
        .output()
        .expect("the az stand-in runs")
}

fn az_token(state_dir: &Path) -> String {
    let out = az(
        state_dir,
        &[
            "account",
            "get-access-token",
            "--output",
            "json",
            "--resource",
            "https://management.azure.com/",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("az prints JSON");
    v["accessToken"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn az_standin_prints_what_the_cli_prints() {
    skip_unless_root!();
    use std::os::unix::fs::PermissionsExt;
    let env = Env::start().await;
    let d = env.sim.state_dir().to_path_buf();
    let mode = |p: &str| std::fs::metadata(d.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("bin/az"), 0o755);
    assert_eq!(mode("az/access-token"), 0o600);
    assert_eq!(mode("sp.json"), 0o600);

    let out = az(
        &d,
        &[
            "account",
            "get-access-token",
            "-o",
            "json",
            "--scope",
            ARM_SCOPE,
            "--tenant",
            &env.sim.endpoints().tenant_id,
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["accessToken"], env.token());
    assert_eq!(v["tokenType"], "Bearer");
    assert_eq!(v["subscription"], env.sub());
    assert_eq!(v["tenant"], env.sim.endpoints().tenant_id);
    let now = jiff::Timestamp::now().as_second();
    let exp = v["expires_on"].as_i64().expect("expires_on is unix seconds");
    assert!((now + 3000..=now + 3700).contains(&exp), "{exp} vs {now}");
    let local = v["expiresOn"].as_str().unwrap();
    assert!(
        jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S%.f", local).is_ok()
            && local.rsplit_once('.').is_some_and(|(_, micros)| micros.len() == 6),
        "{local}"
    );

    let out = az(&d, &["account", "show", "-o", "json"]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["id"], env.sub());
    assert_eq!(v["tenantId"], env.sim.endpoints().tenant_id);
    assert_eq!(v["isDefault"], true);
    assert_eq!(v["state"], "Enabled");
    assert_eq!(v["user"]["type"], "user");
    let out = az(&d, &["account", "show", "--query", "id", "-o", "tsv"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), env.sub());

    for bad in [
        vec!["aks", "list"],
        vec![
            "account",
            "get-access-token",
            "--tenant",
            "00000000-0000-0000-0000-000000000000",
        ],
        vec![
            "account",
            "get-access-token",
            "--scope",
            "https://vault.azure.net/.default",
        ],
        vec!["account", "show", "--subscription", "somebody-elses"],
        vec!["account", "show", "--bogus", "x"],
    ] {
        let out = az(&d, &bad);
        assert_eq!(out.status.code(), Some(1), "az {bad:?}");
        assert!(out.stdout.is_empty(), "az {bad:?} printed to stdout");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("ERROR: "),
            "az {bad:?}"
        );
    }
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_is_refused_and_az_gets_a_fresh_one() {
    skip_unless_root!();
    let env = Env::start().await;
    let d = env.sim.state_dir().to_path_buf();
    let url = format!("{}?{API}", env.mc());
    let before = az_token(&d);
    let (status, _, _) = env.call(reqwest::Method::GET, &url, Some(&before)).await;
    assert_eq!(status, 200);

    env.sim.fault(Fault::ExpiredToken).unwrap();
    let (status, _, body) = env.call(reqwest::Method::GET, &url, Some(&before)).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(error_code(&body), "ExpiredAuthenticationToken");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("The access token expiry UTC time '") && msg.contains("' is earlier than current UTC time '"),
        "{msg}"
    );
    assert!(!msg.contains(&before), "the token must not be echoed");

    let after = az_token(&d);
    assert_ne!(after, before);
    let (status, _, body) = env.call(reqwest::Method::GET, &url, Some(&after)).await;
    assert_eq!(status, 200, "{body}");
    env.emu.shutdown().await;
}

/// Runs azure_identity's `/bin/sh -c "cd /bin && az ..."` with the stand-in first on PATH,
/// for the child only (the test process's environment is shared by every test).
#[derive(Debug)]
struct PathExecutor(String);

#[async_trait::async_trait]
impl azure_identity::Executor for PathExecutor {
    async fn run(&self, program: &OsStr, args: &[&OsStr]) -> std::io::Result<std::process::Output> {
        tokio::process::Command::new(program)
            .args(args)
            .env("PATH", &self.0)
            .output()
            .await
    }
}

async fn arm_accepts(env: &Env, token: &str) {
    let (status, _, body) = env
        .call(reqwest::Method::GET, &format!("{}?{API}", env.mc()), Some(token))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_identity_cli_credential() {
    skip_unless_root!();
    let env = Env::start().await;
    let path = format!("{}/bin:/usr/local/bin:/usr/bin:/bin", env.sim.state_dir().display());
    let cred = azure_identity::AzureCliCredential::new(Some(azure_identity::AzureCliCredentialOptions {
        executor: Some(Arc::new(PathExecutor(path))),
        tenant_id: Some(env.sim.endpoints().tenant_id.clone()),
        ..Default::default()
    }))
    .unwrap();
    let token = cred
        .get_token(&[ARM_SCOPE], None)
        .await
        .expect("AzureCliCredential gets a token");
    assert!(token.expires_on > azure_core::time::OffsetDateTime::now_utc());
    arm_accepts(&env, token.token.secret()).await;

    // Without the stand-in on PATH there is no az.
    let cred = azure_identity::AzureCliCredential::new(Some(azure_identity::AzureCliCredentialOptions {
        executor: Some(Arc::new(PathExecutor("/nonexistent".into()))),
        ..Default::default()
    }))
    .unwrap();
    let err = cred.get_token(&[ARM_SCOPE], None).await.expect_err("no az");
    assert!(err.to_string().contains("az not found on PATH"), "{err}");
    env.emu.shutdown().await;
}

fn client_options(env: &Env) -> azure_core::http::ClientOptions {
    let mut custom = azure_core::cloud::CustomConfiguration::default();
    custom.authority_host = env.sim.endpoints().arm_url.clone();
    azure_core::http::ClientOptions {
        transport: Some(azure_core::http::Transport::new(Arc::new(ca_client(
            env.sim.state_dir(),
        )))),
        cloud: Some(Arc::new(azure_core::cloud::CloudConfiguration::Custom(custom))),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_identity_client_secret_and_workload_identity() {
    skip_unless_root!();
    let env = Env::start().await;
    let sp: Value =
        serde_json::from_str(&std::fs::read_to_string(env.sim.state_dir().join("sp.json")).unwrap()).unwrap();
    let tenant = sp["tenantId"].as_str().unwrap();
    let client_id = sp["clientId"].as_str().unwrap().to_string();
    assert_eq!(sp["authorityHost"], env.sim.endpoints().arm_url);

    let cred = azure_identity::ClientSecretCredential::new(
        tenant,
        client_id.clone(),
        sp["clientSecret"].as_str().unwrap().to_string().into(),
        Some(azure_identity::ClientSecretCredentialOptions {
            client_options: client_options(&env),
        }),
    )
    .unwrap();
    let token = cred
        .get_token(&[ARM_SCOPE], None)
        .await
        .expect("ClientSecretCredential gets a token");
    arm_accepts(&env, token.token.secret()).await;

    let bad = azure_identity::ClientSecretCredential::new(
        tenant,
        client_id.clone(),
        "wrong-secret".to_string().into(),
        Some(azure_identity::ClientSecretCredentialOptions {
            client_options: client_options(&env),
        }),
    )
    .unwrap();
    let err = bad.get_token(&[ARM_SCOPE], None).await.expect_err("wrong secret");
    assert!(err.to_string().contains("AADSTS7000215"), "{err}");

    let wi = azure_identity::WorkloadIdentityCredential::new(Some(azure_identity::WorkloadIdentityCredentialOptions {
        credential_options: azure_identity::ClientAssertionCredentialOptions {
            client_options: client_options(&env),
        },
        client_id: Some(client_id),
        tenant_id: Some(tenant.to_string()),
        token_file_path: Some(sp["federatedTokenFile"].as_str().unwrap().into()),
    }))
    .unwrap();
    let token = wi
        .get_token(&[ARM_SCOPE], None)
        .await
        .expect("WorkloadIdentityCredential gets a token");
    arm_accepts(&env, token.token.secret()).await;
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_errors_are_entra_shaped() {
    skip_unless_root!();
    let env = Env::start().await;
    let ep = env.sim.endpoints();
    let tokens = &env.sim.shared.tokens;
    let post = |tenant: &str, form: Vec<(&str, &str)>| {
        env.http
            .post(format!("{}/{tenant}/oauth2/v2.0/token", ep.arm_url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                form.iter()
                    .map(|(k, v)| format!("{k}={}", v.replace(':', "%3A").replace('/', "%2F")))
                    .collect::<Vec<_>>()
                    .join("&"),
            )
            .send()
    };
    let good = vec![
        ("grant_type", "client_credentials"),
        ("client_id", tokens.client_id.as_str()),
        ("client_secret", tokens.client_secret.as_str()),
        ("scope", ARM_SCOPE),
    ];
    let r = post(&ep.tenant_id, good.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3599);
    assert!(tokens.arm_valid(v["access_token"].as_str().unwrap()));

    let mut wrong = good.clone();
    wrong[2].1 = "nope";
    let r = post(&ep.tenant_id, wrong).await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_client");
    assert!(v["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS7000215: Invalid client secret provided"));

    let r = post("00000000-0000-0000-0000-000000000000", good.clone())
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let mut other_scope = good.clone();
    other_scope[3].1 = "https://vault.azure.net/.default";
    let r = post(&ep.tenant_id, other_scope).await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_resource");

    let r = env
        .http
        .get(format!(
            "{}/{}/v2.0/.well-known/openid-configuration",
            ep.arm_url, ep.tenant_id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["token_endpoint"],
        format!("{}/{}/oauth2/v2.0/token", ep.arm_url, ep.tenant_id)
    );
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_profiles_list_versions_and_node_image_upgrade_is_a_long_running_operation() {
    skip_unless_root!();
    let env = Env::start().await;
    let mc = env.mc();
    // The cluster's upgrade profile and the agent pool versions it offers.
    let p = env.get_ok(&format!("{mc}/upgradeProfiles/default?{API}")).await;
    assert_eq!(p["name"], "default");
    assert_eq!(p["properties"]["controlPlaneProfile"]["kubernetesVersion"], "1.31.5");
    let ups: Vec<&str> = p["properties"]["controlPlaneProfile"]["upgrades"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["kubernetesVersion"].as_str().unwrap())
        .collect();
    assert!(ups.contains(&"1.32.5"), "{ups:?}");
    assert_eq!(p["properties"]["agentPoolProfiles"].as_array().unwrap().len(), 3);
    let v = env.get_ok(&format!("{mc}/availableAgentPoolVersions?{API}")).await;
    let versions = v["properties"]["agentPoolVersions"].as_array().unwrap();
    assert!(
        versions
            .iter()
            .any(|x| x["default"] == true && x["kubernetesVersion"] == "1.31.5"),
        "{v}"
    );
    // An extra cluster has an agent pool too (a real AKS cluster always has one).
    let extra = format!(
        "/subscriptions/{}/resourceGroups/rg-arm-test/providers/Microsoft.ContainerService/managedClusters/aks-extra-01",
        env.sub()
    );
    let pools = env.get_ok(&format!("{extra}/agentPools?{API}")).await;
    let pools = pools["value"].as_array().unwrap();
    assert_eq!(pools.len(), 1);
    assert_eq!(pools[0]["properties"]["mode"], "System");
    assert_eq!(pools[0]["properties"]["powerState"]["code"], "Stopped");
    let c = env.get_ok(&format!("{extra}?{API}")).await;
    assert_eq!(c["properties"]["agentPoolProfiles"].as_array().unwrap().len(), 1);

    // az aks nodepool upgrade --node-image-only: a long-running operation.
    let token = env.token();
    let (code, headers, body) = env
        .call(
            reqwest::Method::POST,
            &format!("{mc}/agentPools/system/upgradeNodeImageVersion?{API}"),
            Some(&token),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["properties"]["provisioningState"], "UpgradingNodeImageVersion");
    let async_op = headers["azure-asyncoperation"].to_str().unwrap().to_string();
    let location = headers["location"].to_str().unwrap().to_string();
    assert!(async_op.contains("/providers/Microsoft.ContainerService/locations/northeurope/operations/"));
    // A second one while the first runs: 409.
    let (code, _, body) = env
        .call(
            reqwest::Method::POST,
            &format!("{mc}/agentPools/system/upgradeNodeImageVersion?{API}"),
            Some(&token),
        )
        .await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["error"]["code"], "OperationNotAllowed");
    let (code, _, _) = env.get(&location).await;
    assert_eq!(code, 202, "Location answers 202 while it runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, _, st) = env.get(&async_op).await;
        if st["status"] == "Succeeded" {
            break;
        }
        assert_eq!(st["status"], "InProgress", "{st}");
        assert!(std::time::Instant::now() < deadline, "the upgrade did not finish");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (code, _, pool) = env.get(&location).await;
    assert_eq!(code, 200);
    assert_eq!(
        pool["properties"]["nodeImageVersion"],
        "AKSUbuntu-2204gen2containerd-202503.05.0"
    );
    assert_eq!(pool["properties"]["provisioningState"], "Succeeded");
    // The node was cordoned, reimaged (a new boot), labelled with the image, uncordoned.
    let node = "aks-system-31415926-vmss000000";
    let evs: Vec<_> = env
        .sim
        .events()
        .into_iter()
        .filter(|e| e.node.as_deref() == Some(node))
        .map(|e| (e.kind, e.detail))
        .collect();
    let pos = |k: &str| {
        evs.iter()
            .position(|(kind, _)| kind == k)
            .unwrap_or_else(|| panic!("{k}: {evs:?}"))
    };
    assert!(
        pos("cordon") < pos("reboot") && pos("reboot") < pos("node-booted"),
        "{evs:?}"
    );
    assert!(pos("node-booted") < pos("uncordon"), "{evs:?}");
    let n = env.sim.shared.store.get(aks_sim::store::NODES, None, node).unwrap();
    assert_eq!(
        n["metadata"]["labels"]["kubernetes.azure.com/node-image-version"],
        "AKSUbuntu-2204gen2containerd-202503.05.0"
    );
    assert!(n["spec"]["unschedulable"].is_null());
}

const ENTRA: &str = r#"
tenantId: 99999999-8888-7777-6666-555555555555
resourceGroup: rg-entra
cluster:
  name: aks-entra
  aadProfile: {managed: true, enableAzureRBAC: true}
  disableLocalAccounts: true
timing: {tokenLifetimeSeconds: 30}
pools:
  - {name: system, mode: System, count: 1}
"#;

const AKS_SCOPE: &str = "6dae42f8-4368-4678-94ff-3960e28e3630/.default";

/// `GET /api/v1/nodes` on the emulated API server with `token`: the status.
async fn kube_status(env: &Env, token: &str) -> u16 {
    let url = format!("{}/api/v1/nodes", env.sim.endpoints().kube_url);
    env.http
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("the API server answers")
        .status()
        .as_u16()
}

fn kubeconfig_of(body: &Value) -> String {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(body["kubeconfigs"][0]["value"].as_str().unwrap())
        .unwrap();
    String::from_utf8(raw).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_clusters_describe_their_auth_and_hand_out_kubelogin_credentials_and_tokens() {
    skip_unless_root!();
    let env = Env::start_with(ENTRA).await;
    let tenant = "99999999-8888-7777-6666-555555555555";

    // The managed cluster says how it authenticates, as ARM does.
    let mc = env.get_ok(&format!("{}?{API}", env.mc())).await;
    assert_eq!(mc["properties"]["aadProfile"]["managed"], true);
    assert_eq!(mc["properties"]["aadProfile"]["enableAzureRBAC"], true);
    assert_eq!(mc["properties"]["aadProfile"]["tenantID"], tenant);
    assert_eq!(mc["properties"]["disableLocalAccounts"], true);

    // The user credential: kubelogin (exec, the default) or the retired azure auth-provider.
    let token = env.token();
    let user = |q: &'static str| {
        let path = format!("{}/listClusterUserCredential?{API}{q}", env.mc());
        let token = token.clone();
        let env = &env;
        async move { env.call(reqwest::Method::POST, &path, Some(&token)).await }
    };
    for q in ["", "&format=exec"] {
        let (status, _, body) = user(q).await;
        assert_eq!(status, 200, "{body}");
        let yaml = kubeconfig_of(&body);
        assert!(yaml.contains("command: kubelogin"), "{yaml}");
        for arg in [
            "- get-token",
            "- --login\n      - devicecode",
            "- --server-id\n      - 6dae42f8-4368-4678-94ff-3960e28e3630",
            "- --client-id\n      - 80faf920-1908-4b52-b5ef-a8e7bedfc67a",
        ] {
            assert!(yaml.contains(arg), "{arg} missing: {yaml}");
        }
        assert!(yaml.contains(&format!("- --tenant-id\n      - {tenant}")), "{yaml}");
        assert!(
            !yaml.contains(&env.sim.shared.tokens.kube_user),
            "no static token on an Entra cluster"
        );
        // kube-rs reads it as an exec user.
        let kc = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
        let exec = kc.auth_infos[0].auth_info.as_ref().unwrap().exec.as_ref().unwrap();
        assert_eq!(exec.command.as_deref(), Some("kubelogin"));
    }
    let (status, _, body) = user("&format=azure").await;
    assert_eq!(status, 200, "{body}");
    let yaml = kubeconfig_of(&body);
    assert!(
        yaml.contains("auth-provider:") && yaml.contains("name: azure"),
        "{yaml}"
    );
    assert!(
        yaml.contains("apiserver-id: 6dae42f8-4368-4678-94ff-3960e28e3630"),
        "{yaml}"
    );
    let (status, _, body) = user("&format=yaml").await;
    assert_eq!(status, 400, "{body}");

    // Local accounts disabled: no admin credential, ARM's error.
    let (status, _, body) = env
        .call(
            reqwest::Method::POST,
            &format!("{}/listClusterAdminCredential?{API}", env.mc()),
            Some(&token),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_code(&body), "BadRequest");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Getting static credential is not allowed because this cluster is set to disable local accounts"),
        "{body}"
    );

    // The API server: Entra tokens for the AKS server app from the token endpoint
    // (azure_identity's ClientSecretCredential) and from the az stand-in; not ARM's.
    let sp: Value =
        serde_json::from_str(&std::fs::read_to_string(env.sim.state_dir().join("sp.json")).unwrap()).unwrap();
    let cred = azure_identity::ClientSecretCredential::new(
        tenant,
        sp["clientId"].as_str().unwrap().to_string(),
        sp["clientSecret"].as_str().unwrap().to_string().into(),
        Some(azure_identity::ClientSecretCredentialOptions {
            client_options: client_options(&env),
        }),
    )
    .unwrap();
    let sp_token = cred
        .get_token(&[AKS_SCOPE], None)
        .await
        .expect("a token for the AKS app");
    let left = sp_token.expires_on.unix_timestamp() - jiff::Timestamp::now().as_second();
    assert!((25..=30).contains(&left), "timing.tokenLifetimeSeconds: 30, got {left}");
    assert_eq!(kube_status(&env, sp_token.token.secret()).await, 200);

    let out = az(
        env.sim.state_dir(),
        &["account", "get-access-token", "--scope", AKS_SCOPE],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cli_token = v["accessToken"].as_str().unwrap();
    let left = v["expires_on"].as_i64().unwrap() - jiff::Timestamp::now().as_second();
    assert!((14..=30).contains(&left), "the CLI's token lives at most 30 s: {left}");
    assert_eq!(kube_status(&env, cli_token).await, 200);
    assert_eq!(kube_status(&env, cli_token).await, 200);

    assert_eq!(
        kube_status(&env, &env.token()).await,
        401,
        "an ARM token is for another audience"
    );
    let (expired, _) = env.sim.shared.tokens.issue_entra(aks_sim::AKS_SERVER_APP, "someone", 0);
    assert_eq!(kube_status(&env, &expired).await, 401);

    let events = env.sim.events();
    let used: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == "kube-token")
        .map(|e| e.detail.as_str())
        .collect();
    assert_eq!(used.len(), 2, "each token is logged once, at its first use: {used:?}");
    assert!(used[0].contains(sp["clientId"].as_str().unwrap()), "{used:?}");
    assert!(used[1].contains("operator@aks-sim.example"), "{used:?}");
    let refused: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == "kube-unauthorized")
        .map(|e| e.detail.as_str())
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused[0].contains("Azure Resource Manager token"), "{refused:?}");
    assert!(refused[1].contains("has expired"), "{refused:?}");
    for e in &events {
        assert!(!e.detail.contains("sim-entra-"), "a token reached the event log: {e:?}");
    }
    env.emu.shutdown().await;
}

#[test]
fn entra_scenario_fields_are_checked() {
    let e = Scenario::parse(
        "cluster: {name: c, disableLocalAccounts: true}\npools: [{name: p, count: 1}]",
        "t",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("cluster.disableLocalAccounts") && e.contains("aadProfile.managed"),
        "{e}"
    );
    let e = Scenario::parse(
        "cluster: {name: c}\ntiming: {tokenLifetimeSeconds: 5}\npools: [{name: p, count: 1}]",
        "t",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("timing.tokenLifetimeSeconds"), "{e}");
}

#[tokio::test]
async fn maintenance_configurations_come_from_the_scenario_and_the_webhook_sink_records_deliveries() {
    skip_unless_root!();
    let yaml = SCENARIO.replace(
        "  adminUsername: opsadmin\n",
        "  adminUsername: opsadmin\n  maintenanceConfigurations:\n    - name: default\n      maintenanceWindow: {schedule: {relativeMonthly: {intervalMonths: 1, weekIndex: Last, dayOfWeek: Friday}}, durationHours: 6, startTime: '22:00', utcOffset: '+01:00'}\n    - name: aksManagedAutoUpgradeSchedule\n      maintenanceWindow: {schedule: {daily: {intervalDays: 1}}, durationHours: 4, startTime: '01:00'}\n",
    );
    let env = Env::start_with(&yaml).await;
    let mc = env.mc();
    // Served as the scenario says, in ARM's shape.
    let all = env.get_ok(&format!("{mc}/maintenanceConfigurations?{API}")).await;
    let names: Vec<&str> = all["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "aksManagedAutoUpgradeSchedule"]);
    let one = env
        .get_ok(&format!("{mc}/maintenanceConfigurations/default?{API}"))
        .await;
    assert_eq!(one["id"], format!("{mc}/maintenanceConfigurations/default"));
    assert_eq!(
        one["properties"]["maintenanceWindow"]["schedule"]["relativeMonthly"]["weekIndex"],
        "Last"
    );
    let (status, _, body) = env
        .get(&format!(
            "{mc}/maintenanceConfigurations/aksManagedNodeOSUpgradeSchedule?{API}"
        ))
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "NotFound");

    // The webhook sink: HTTPS with the emulator's CA; each delivery is an event.
    let sink = env.sim.endpoints().webhook_url.clone();
    let post = |path: &str, body: &str| {
        env.http
            .post(format!("{sink}/hooks/{path}"))
            .body(body.to_string())
            .send()
    };
    let r = post("slack/T0/B0/x", r#"{"text":"hello"}"#).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    env.sim.fault(Fault::WebhookError { count: 1, status: 503 }).unwrap();
    assert_eq!(post("teams/wf", "{}").await.unwrap().status().as_u16(), 503);
    assert_eq!(
        post("teams/wf", "{}").await.unwrap().status().as_u16(),
        200,
        "one delivery refused"
    );
    env.sim.fault(Fault::WebhookSlow { seconds: 0.5 }).unwrap();
    let t0 = std::time::Instant::now();
    assert_eq!(post("generic", "{}").await.unwrap().status().as_u16(), 200);
    assert!(t0.elapsed() >= std::time::Duration::from_millis(500));
    let hooks: Vec<(String, String)> = env
        .sim
        .events()
        .into_iter()
        .filter(|e| e.kind == "webhook")
        .map(|e| (e.object.unwrap_or_default(), e.detail))
        .collect();
    assert_eq!(hooks.len(), 4, "{hooks:?}");
    assert_eq!(
        hooks[0],
        ("slack/T0/B0/x".to_string(), r#"{"text":"hello"}"#.to_string())
    );
    assert!(hooks[1].1.starts_with("refused with 503 (fault)"), "{hooks:?}");
    assert_eq!(hooks[3].0, "generic");
}

/// The scenario's node resource group and its first Linux scale set, as a user finds them
/// (the cluster's `nodeResourceGroup`, then the scale sets listed there).
async fn node_rg_and_vmss(env: &Env) -> (String, String, Value) {
    let c = env.get_ok(&format!("{}?{API}", env.mc())).await;
    let nrg = c["properties"]["nodeResourceGroup"].as_str().unwrap().to_string();
    let list = env
        .get_ok(&format!(
            "/subscriptions/{}/resourceGroups/{nrg}/providers/Microsoft.Compute/virtualMachineScaleSets?api-version=2024-11-01",
            env.sub()
        ))
        .await;
    let first = list["value"][0].clone();
    (nrg, first["name"].as_str().unwrap().to_string(), first)
}

/// Each resource type accepts only the api-versions its provider publishes; anything else is
/// ARM's 400, naming the type and the versions it does support.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_are_checked_per_resource_type() {
    skip_unless_root!();
    let env = Env::start().await;
    let mc = env.mc();

    // An unpublished version of managedClusters: NoRegisteredProviderFound with the list.
    let (status, _, body) = env.get(&format!("{mc}?api-version=1999-01-01")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_code(&body), "NoRegisteredProviderFound");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with(
            "No registered resource provider found for location 'northeurope' and API version '1999-01-01' for type 'managedClusters'. The supported api-versions are '2017-08-31, 2018-03-31, "
        ),
        "{msg}"
    );
    assert!(msg.contains(", 2025-10-01, ") && msg.contains("2026-08-01"), "{msg}");

    // Sub-resources are checked as managedClusters; a Compute version is not an AKS one.
    for path in [
        format!("{mc}/agentPools?api-version=2024-11-01"),
        format!("{mc}/maintenanceConfigurations?api-version=2024-11-01"),
        format!("{mc}/agentPools/user/upgradeProfiles/default?api-version=2024-11-01"),
    ] {
        let (status, _, body) = env.get(&path).await;
        assert_eq!(
            (status, error_code(&body)),
            (400, "NoRegisteredProviderFound"),
            "{path}: {body}"
        );
    }
    let (status, _, body) = env
        .call(
            reqwest::Method::POST,
            &format!("{mc}/listClusterUserCredential?api-version=2021-11-01-preview"),
            Some(&env.token()),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (400, "NoRegisteredProviderFound"),
        "a retired preview: {body}"
    );
    // Published versions, stable and preview, are served.
    for v in ["2017-08-31", "2025-10-01", "2025-10-02-preview", "2026-08-01"] {
        env.get_ok(&format!("{mc}?api-version={v}")).await;
    }

    // Compute: the scale set's own list; an AKS-only version is refused.
    let (nrg, vmss, _) = node_rg_and_vmss(&env).await;
    let vmss_path = format!(
        "/subscriptions/{}/resourceGroups/{nrg}/providers/Microsoft.Compute/virtualMachineScaleSets/{vmss}",
        env.sub()
    );
    let (status, _, body) = env.get(&format!("{vmss_path}?api-version=2025-10-01")).await;
    assert_eq!(
        (status, error_code(&body)),
        (400, "NoRegisteredProviderFound"),
        "{body}"
    );
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("for type 'virtualMachineScaleSets'"), "{msg}");
    assert!(msg.contains("'2015-06-15, ") && msg.contains(", 2024-11-01, "), "{msg}");
    env.get_ok(&format!("{vmss_path}/virtualMachines?api-version=2026-04-01"))
        .await;
    // Managed run commands exist from 2020-06-01 only.
    let (status, _, body) = env
        .get(&format!(
            "{vmss_path}/virtualMachines/0/runCommands?api-version=2019-12-01"
        ))
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (400, "NoRegisteredProviderFound"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("for type 'virtualMachineScaleSets/virtualMachines/runCommands'. The supported api-versions are '2020-06-01, "),
        "{body}"
    );

    // ARM's own resources: InvalidApiVersionParameter with ARM's list.
    let (status, _, body) = env
        .get(&format!("/subscriptions/{}?api-version=2025-10-01", env.sub()))
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (400, "InvalidApiVersionParameter"),
        "{body}"
    );
    assert!(
        body["error"]["message"].as_str().unwrap().starts_with(
            "The api-version '2025-10-01' is invalid. The supported versions are '2024-08-01,2024-06-01-preview,"
        ),
        "{body}"
    );
    // A malformed version anywhere is InvalidApiVersionParameter.
    let (status, _, body) = env.get(&format!("{mc}?api-version=latest")).await;
    assert_eq!(
        (status, error_code(&body)),
        (400, "InvalidApiVersionParameter"),
        "{body}"
    );
    env.emu.shutdown().await;
}

/// The api-versions aks-patch itself sends (src/azure/arm) are ones ARM publishes, so the
/// emulator accepts them: a typo there fails here, not on AKS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aks_patch_api_versions_are_published_ones() {
    skip_unless_root!();
    let env = Env::start().await;
    let read = |p: &str| std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)).unwrap();
    let konst = |src: &str, name: &str| -> String {
        let line = src
            .lines()
            .find(|l| l.contains(&format!("const {name}: &str = ")))
            .unwrap_or_else(|| panic!("{name} is defined"));
        line.split('"').nth(1).unwrap().to_string()
    };
    let arm = read("src/azure/arm/mod.rs");
    let compute = read("src/azure/arm/compute.rs");
    let aks = konst(&arm, "CONTAINER_SERVICE_API_VERSION");
    let subs = konst(&arm, "SUBSCRIPTIONS_API_VERSION");
    let vm = konst(&compute, "COMPUTE_API_VERSION");
    env.get_ok(&format!("{}?api-version={aks}", env.mc())).await;
    env.get_ok(&format!("{}/agentPools?api-version={aks}", env.mc())).await;
    env.get_ok(&format!("/subscriptions?api-version={subs}")).await;
    let (nrg, vmss, _) = node_rg_and_vmss(&env).await;
    env.get_ok(&format!(
        "/subscriptions/{}/resourceGroups/{nrg}/providers/Microsoft.Compute/virtualMachineScaleSets/{vmss}/virtualMachines/0/runCommands?api-version={vm}",
        env.sub()
    ))
    .await;
    env.emu.shutdown().await;
}

/// A scale set carries its model: `virtualMachineProfile.osProfile.computerNamePrefix` is the
/// prefix of its nodes' names, which is how clients map a node to its instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_sets_have_a_model_with_the_node_name_prefix() {
    skip_unless_root!();
    let env = Env::start().await;
    let (nrg, _, _) = node_rg_and_vmss(&env).await;
    let list = env
        .get_ok(&format!(
            "/subscriptions/{}/resourceGroups/{nrg}/providers/Microsoft.Compute/virtualMachineScaleSets?api-version=2024-11-01",
            env.sub()
        ))
        .await;
    let nodes: Vec<String> = env.sim.shared.nodes.iter().map(|n| n.name.clone()).collect();
    let sets = list["value"].as_array().unwrap();
    assert_eq!(sets.len(), 3, "system, user and win: {list}");
    for set in sets {
        let name = set["name"].as_str().unwrap();
        let one = env
            .get_ok(&format!(
                "/subscriptions/{}/resourceGroups/{nrg}/providers/Microsoft.Compute/virtualMachineScaleSets/{name}?api-version=2024-11-01",
                env.sub()
            ))
            .await;
        let profile = &one["properties"]["virtualMachineProfile"];
        let prefix = profile["osProfile"]["computerNamePrefix"]
            .as_str()
            .expect("computerNamePrefix");
        let mine: Vec<&String> = nodes.iter().filter(|n| n.starts_with(prefix)).collect();
        assert_eq!(
            mine.len() as u64,
            one["sku"]["capacity"].as_u64().unwrap(),
            "{prefix}: {nodes:?}"
        );
        assert!(profile["osProfile"]["adminUsername"] == "opsadmin", "{profile}");
        assert!(
            profile["storageProfile"]["imageReference"]["id"].is_string(),
            "{profile}"
        );
        assert!(
            profile["networkProfile"]["networkInterfaceConfigurations"][0]["name"].is_string(),
            "{profile}"
        );
        // Each instance's computer name is the prefix and its number.
        let vms = env
            .get_ok(&format!(
                "/subscriptions/{}/resourceGroups/{nrg}/providers/Microsoft.Compute/virtualMachineScaleSets/{name}/virtualMachines?api-version=2024-11-01",
                env.sub()
            ))
            .await;
        for vm in vms["value"].as_array().unwrap() {
            let cn = vm["properties"]["osProfile"]["computerName"].as_str().unwrap();
            assert!(cn.starts_with(prefix) && nodes.iter().any(|n| n == cn), "{cn}");
        }
    }
    env.emu.shutdown().await;
}

/// The expired-token fault expires the tokens issued so far, and only those: a token issued
/// afterwards (ARM or Entra, for the API server) works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_expires_only_tokens_issued_so_far() {
    skip_unless_root!();
    let env = Env::start_with(ENTRA).await;
    let old_arm = env.token();
    let (old_entra, _) = env
        .sim
        .shared
        .tokens
        .issue_entra(aks_sim::AKS_SERVER_APP, "someone", 3600);
    assert_eq!(kube_status(&env, &old_entra).await, 200);
    env.sim.fault(Fault::ExpiredToken).unwrap();
    assert_eq!(kube_status(&env, &old_entra).await, 401, "issued before the fault");
    let (status, _, body) = env
        .call(reqwest::Method::GET, &format!("{}?{API}", env.mc()), Some(&old_arm))
        .await;
    assert_eq!((status, error_code(&body)), (401, "ExpiredAuthenticationToken"));

    // Issued afterwards: fresh, while the fault stays in force.
    let (new_entra, _) = env
        .sim
        .shared
        .tokens
        .issue_entra(aks_sim::AKS_SERVER_APP, "someone", 3600);
    assert_eq!(kube_status(&env, &new_entra).await, 200, "issued after the fault");
    let new_arm = az_token(env.sim.state_dir());
    assert_ne!(new_arm, old_arm);
    let (status, _, body) = env
        .call(reqwest::Method::GET, &format!("{}?{API}", env.mc()), Some(&new_arm))
        .await;
    assert_eq!(status, 200, "{body}");
    env.emu.shutdown().await;
}
