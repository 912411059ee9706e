//! src/kube end to end against aks-sim's Kubernetes API: node rows beside kubectl's, cordon
//! and drain as kubectl does them, PDB timeouts, the Lease lock, kured's lock, waiting for a
//! reboot, and our retry of 5xx/reset faults. Every claim is checked against the emulator's
//! own event log or its objects.

use crate::common::Emulator;
use aks_patch::kube::ObjectRef;
use aks_patch::kube::{
    client_from_kubeconfig_file, cordon, drain, kured_lock_holder, list_node_infos, plan_drain, release_kured_lock,
    take_kured_lock, uncordon, wait_for_reboot, wait_pdbs_healthy, CancellationToken, DrainError, DrainEvent,
    DrainOptions, HolderInfo, KuredError, KuredLock, Lock, LockError, LockOptions, Readiness, RebootError,
    RefuseReason, SkipReason,
};
use aks_patch::output::nodes::NodeColumns;
use aks_sim::scenario::KuredSpec;
use aks_sim::{Fault, Scenario, SimEvent};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::Client;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The user pool's first node: the bare pod and the static pod land there.
const USER0: &str = "aks-user-31417037-vmss000000";
const USER1: &str = "aks-user-31417037-vmss000001";
/// Cordoned by hand in the default scenario.
const USER2: &str = "aks-user-31417037-vmss000002";

/// The emulator, and aks-patch's own Kubernetes client built from its kubeconfig.
struct Env {
    emu: Emulator,
    client: Client,
}

impl std::ops::Deref for Env {
    type Target = Emulator;
    fn deref(&self) -> &Emulator {
        &self.emu
    }
}

impl Env {
    async fn start(scenario: Scenario) -> Env {
        let emu = Emulator::start(scenario).await;
        let client = client_from_kubeconfig_file(&emu.kubeconfig(), None)
            .await
            .expect("client from the emulator's kubeconfig");
        Env { emu, client }
    }

    async fn default() -> Env {
        Env::start(Scenario::default_scenario()).await
    }

    fn events(&self, kind: &str) -> Vec<SimEvent> {
        self.sim.events().into_iter().filter(|e| e.kind == kind).collect()
    }

    async fn pods_on(&self, node: &str) -> Vec<Pod> {
        let api: Api<Pod> = Api::all(self.client.clone());
        api.list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
            .await
            .expect("list pods")
            .items
    }

    async fn stop(self) {
        self.emu.shutdown().await;
    }
}

fn pod_name(p: &Pod) -> String {
    format!(
        "{}/{}",
        p.metadata.namespace.as_deref().unwrap_or(""),
        p.metadata.name.as_deref().unwrap_or("")
    )
}

fn owner_kind(p: &Pod) -> Option<String> {
    p.metadata
        .owner_references
        .as_ref()
        .and_then(|o| o.iter().find(|o| o.controller == Some(true)))
        .map(|o| o.kind.clone())
}

fn is_mirror(p: &Pod) -> bool {
    p.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"))
}

fn consent() -> DrainOptions {
    DrainOptions {
        delete_emptydir_data: true,
        force: true,
        timeout: Duration::from_secs(60),
        retry_interval: Duration::from_millis(500),
        poll_interval: Duration::from_millis(200),
        ..Default::default()
    }
}

/// Cut `kubectl get nodes -o wide` output into cells by the header's column offsets
/// (kubectl's tabwriter left-aligns every cell under its header).
fn parse_kubectl_table(text: &str) -> Vec<Vec<String>> {
    let mut lines = text.lines();
    let header = lines.next().expect("a header line");
    let mut starts = vec![];
    let mut prev_space = true;
    for (i, c) in header.char_indices() {
        if c != ' ' && prev_space {
            starts.push(i);
        }
        prev_space = c == ' ';
    }
    let cut = |line: &str| -> Vec<String> {
        starts
            .iter()
            .enumerate()
            .map(|(k, &s)| {
                let end = starts.get(k + 1).copied().unwrap_or(line.len()).min(line.len());
                line.get(s.min(line.len())..end).unwrap_or("").trim().to_string()
            })
            .collect()
    };
    let mut rows = vec![cut(header)];
    rows.extend(lines.filter(|l| !l.trim().is_empty()).map(cut));
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_rows_match_kubectl_wide() {
    skip_unless_root!();
    let env = Env::default().await;
    let kubeconfig = env.sim.state_dir().join("kubeconfig");
    let rows = list_node_infos(&env.client, None).await.expect("list nodes");
    assert_eq!(rows.len(), env.sim.shared.nodes.len(), "one row per node");
    let now = k8s_openapi::jiff::Timestamp::now();
    let out = std::process::Command::new("kubectl")
        .args(["get", "nodes", "-o", "wide"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let table = parse_kubectl_table(&text);
    assert_eq!(
        table[0],
        [
            "NAME",
            "STATUS",
            "ROLES",
            "AGE",
            "VERSION",
            "INTERNAL-IP",
            "EXTERNAL-IP",
            "OS-IMAGE",
            "KERNEL-VERSION",
            "CONTAINER-RUNTIME"
        ],
        "{text}"
    );
    let ours: Vec<Vec<String>> = rows
        .iter()
        .map(|r| NodeColumns::of(r, now).cells().map(String::from).to_vec())
        .collect();
    assert_eq!(table[1..].to_vec(), ours, "kubectl printed:\n{text}");
    // The cordoned node says so; pools, OS and bootIDs are filled in.
    let u2 = rows.iter().find(|r| r.name == USER2).expect("cordoned node listed");
    assert_eq!(NodeColumns::of(u2, now).status, "Ready,SchedulingDisabled");
    assert!(u2.unschedulable && u2.is_ready());
    for r in &rows {
        let spec = env.sim.shared.node(&r.name).expect("node known to the emulator");
        assert_eq!(r.pool.as_deref(), Some(spec.pool.as_str()));
        assert_eq!(r.os_sku.as_deref(), Some(spec.os_sku.as_str()));
        assert_eq!(r.boot_id.as_deref(), Some(env.boot_id(&r.name).as_str()));
        assert!(r.created.is_some());
        assert_eq!(NodeColumns::of(r, now).age, "42d");
    }
    // A label selector is passed through.
    let user = list_node_infos(&env.client, Some("agentpool=user"))
        .await
        .expect("list");
    assert_eq!(user.len(), 3);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_refuses_without_consent_then_drains_like_kubectl() {
    skip_unless_root!();
    let env = Env::default().await;
    let before = env.pods_on(USER0).await;
    let bare: Vec<String> = before
        .iter()
        .filter(|p| owner_kind(p).is_none() && !is_mirror(p))
        .map(pod_name)
        .collect();
    assert!(!bare.is_empty(), "the scenario puts a bare pod on {USER0}");

    // Not cordoned yet: drain refuses to start.
    let cancel = CancellationToken::new();
    let e = drain(&env.client, USER0, &consent(), |_| {}, &cancel)
        .await
        .expect_err("an uncordoned node is not drained");
    assert!(matches!(e, DrainError::NotCordoned { .. }), "{e}");

    assert!(!cordon(&env.client, USER0).await.expect("cordon"), "was not cordoned");
    assert!(cordon(&env.client, USER0).await.expect("cordon again"), "now it is");
    assert!(
        cordon(&env.client, USER2).await.expect("cordon"),
        "cordoned by the scenario"
    );

    // Without --delete-emptydir-data and --force: refused, naming the pods, nothing evicted.
    // The bare pod is on USER0; the emptyDir workload's pod on a user node too: refuse both.
    let e = drain(&env.client, USER0, &DrainOptions::default(), |_| {}, &cancel)
        .await
        .expect_err("refused without consent");
    let DrainError::Refused { ref pods, .. } = e else {
        panic!("expected a refusal, got {e}")
    };
    let text = e.to_string();
    for b in &bare {
        assert!(text.contains(b.as_str()), "the refusal names {b}: {text}");
        assert!(
            pods.iter()
                .any(|(p, r)| p.to_string() == *b && *r == RefuseReason::NoController),
            "{pods:?}"
        );
    }
    assert!(text.contains("--force"), "{text}");
    let mut empty_dir_refused = false;
    for node in [USER0, USER1] {
        let on_node = env.pods_on(node).await;
        let with_empty_dir: Vec<String> = on_node
            .iter()
            .filter(|p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.volumes.as_ref())
                    .is_some_and(|v| v.iter().any(|v| v.empty_dir.is_some()))
            })
            .map(pod_name)
            .collect();
        if with_empty_dir.is_empty() {
            continue;
        }
        let was = cordon(&env.client, node).await.expect("cordon");
        let opts = DrainOptions {
            force: true,
            ..DrainOptions::default()
        };
        let e = drain(&env.client, node, &opts, |_| {}, &cancel)
            .await
            .expect_err("emptyDir pods need consent");
        let DrainError::Refused { ref pods, .. } = e else {
            panic!("expected a refusal, got {e}")
        };
        let text = e.to_string();
        for p in &with_empty_dir {
            assert!(text.contains(p.as_str()), "the refusal names {p}: {text}");
            assert!(
                pods.iter()
                    .any(|(r, why)| r.to_string() == *p && *why == RefuseReason::EmptyDir),
                "{pods:?}"
            );
        }
        assert!(text.contains("--delete-emptydir-data"), "{text}");
        empty_dir_refused = true;
        if !was && node != USER0 {
            uncordon(&env.client, node).await.expect("uncordon");
        }
    }
    assert!(
        empty_dir_refused,
        "the default scenario has an emptyDir pod on a user node"
    );
    assert!(env.events("eviction").is_empty(), "nothing evicted on a refusal");

    // The plan, as kubectl would decide it.
    let plan = plan_drain(&env.client, USER0, &consent()).await.expect("plan");
    assert!(plan.refused.is_empty());
    for p in &before {
        let name = pod_name(p);
        let skipped = plan.skipped.iter().find(|(r, _)| r.to_string() == name);
        if is_mirror(p) {
            assert!(matches!(skipped, Some((_, SkipReason::MirrorPod))), "{name}");
        } else if owner_kind(p).as_deref() == Some("DaemonSet") {
            assert!(matches!(skipped, Some((_, SkipReason::DaemonSet { .. }))), "{name}");
        } else {
            assert!(plan.evict.iter().any(|r| r.to_string() == name), "{name} is evicted");
        }
    }
    assert!(!plan.evict.is_empty());

    // With consent: drained.
    let events = Arc::new(Mutex::new(vec![]));
    let ev = events.clone();
    // A grace period, sent as the Eviction's deleteOptions.gracePeriodSeconds.
    let with_grace = DrainOptions {
        grace_period: Some(7),
        ..consent()
    };
    let report = drain(
        &env.client,
        USER0,
        &with_grace,
        move |e| ev.lock().unwrap().push(e),
        &cancel,
    )
    .await
    .expect("drain with consent");
    let mut evicted: Vec<String> = report.evicted.iter().map(|p| p.to_string()).collect();
    evicted.sort();
    let mut planned: Vec<String> = plan.evict.iter().map(|p| p.to_string()).collect();
    planned.sort();
    assert_eq!(evicted, planned);
    let got = events.lock().unwrap().clone();
    assert!(matches!(got.first(), Some(DrainEvent::Planned { .. })), "{got:?}");
    // Every evicted pod went through the eviction API (the emulator's log says so) and is gone.
    let logged: Vec<String> = env
        .events("eviction")
        .into_iter()
        .filter(|e| e.node.as_deref() == Some(USER0))
        .filter_map(|e| e.object)
        .collect();
    for p in &evicted {
        assert!(logged.contains(p), "eviction of {p} logged: {logged:?}");
    }
    let deleted: Vec<SimEvent> = env
        .events("pod-deleted")
        .into_iter()
        .filter(|e| e.object.as_ref().is_some_and(|o| evicted.contains(o)))
        .collect();
    assert_eq!(deleted.len(), evicted.len(), "{deleted:?}");
    for d in &deleted {
        assert_eq!(d.detail, "grace 7s", "the grace period reached the API server: {d:?}");
    }
    let after = env.pods_on(USER0).await;
    for p in &after {
        assert!(
            is_mirror(p) || owner_kind(p).as_deref() == Some("DaemonSet") || p.metadata.deletion_timestamp.is_some(),
            "{} is still on the node",
            pod_name(p)
        );
        assert!(!evicted.contains(&pod_name(p)) || p.metadata.deletion_timestamp.is_some());
    }
    // The budgets of the evicted workloads recover (replacements start elsewhere).
    assert!(!report.pdbs.is_empty(), "storefront/checkout are covered by PDBs");
    wait_pdbs_healthy(&env.client, &report.pdbs, Duration::from_secs(30))
        .await
        .expect("PDBs healthy again");

    // Uncordon reports it was cordoned; the emulator saw cordon then uncordon.
    assert!(uncordon(&env.client, USER0).await.expect("uncordon"));
    assert!(!uncordon(&env.client, USER0).await.expect("uncordon again"));
    let cordons: Vec<String> = env
        .sim
        .events()
        .into_iter()
        .filter(|e| e.node.as_deref() == Some(USER0) && (e.kind == "cordon" || e.kind == "uncordon"))
        .map(|e| e.kind)
        .collect();
    assert_eq!(cordons, ["cordon", "uncordon"]);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdb_that_never_allows_times_out_naming_pod_and_pdb() {
    skip_unless_root!();
    let env = Env::default().await;
    env.sim
        .fault(Fault::PdbNeverAllows {
            namespace: "shop".into(),
            name: "storefront-pdb".into(),
        })
        .expect("fault");
    // The user node that runs a storefront pod.
    let mut node = None;
    for n in [USER0, USER1] {
        if env
            .pods_on(n)
            .await
            .iter()
            .any(|p| pod_name(p).starts_with("shop/storefront"))
        {
            node = Some(n);
            break;
        }
    }
    let node = node.expect("a storefront pod on a schedulable user node");
    cordon(&env.client, node).await.expect("cordon");
    let opts = DrainOptions {
        timeout: Duration::from_secs(4),
        ..consent()
    };
    let start = Instant::now();
    let refused = Arc::new(Mutex::new(0));
    let r2 = refused.clone();
    let e = drain(
        &env.client,
        node,
        &opts,
        move |e| {
            if let DrainEvent::EvictionRefused { pdb, .. } = e {
                assert_eq!(pdb.as_deref(), Some("storefront-pdb"));
                *r2.lock().unwrap() += 1;
            }
        },
        &CancellationToken::new(),
    )
    .await
    .expect_err("the PDB never allows");
    let took = start.elapsed();
    assert!(took < Duration::from_secs(12), "gave up in time: {took:?}");
    let DrainError::Timeout { ref blocked, .. } = e else {
        panic!("expected a timeout, got {e}")
    };
    assert!(!blocked.is_empty());
    for b in blocked {
        assert!(b.pod.name.starts_with("storefront"), "{b:?}");
        assert_eq!(b.pdbs, ["shop/storefront-pdb"], "{b:?}");
    }
    let text = e.to_string();
    eprintln!("drain timeout: {text}");
    assert!(
        text.contains("shop/storefront-pdb") && text.contains("shop/storefront"),
        "{text}"
    );
    assert!(*refused.lock().unwrap() >= 2, "retried while refused");
    assert!(!env.events("eviction-refused").is_empty());

    // Ctrl-C while blocked: stops promptly.
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        c2.cancel();
    });
    let start = Instant::now();
    let e = drain(
        &env.client,
        node,
        &DrainOptions {
            timeout: Duration::from_secs(120),
            retry_interval: Duration::from_secs(30),
            ..consent()
        },
        |_| {},
        &cancel,
    )
    .await
    .expect_err("cancelled");
    assert!(matches!(e, DrainError::Cancelled { .. }), "{e}");
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());

    // Once the budget allows again, its PDB is healthy.
    env.sim.fault(Fault::Clear).expect("clear");
    wait_pdbs_healthy(
        &env.client,
        &[ObjectRef::new("shop", "storefront-pdb")],
        Duration::from_secs(20),
    )
    .await
    .expect("healthy");
    env.stop().await;
}

fn holder(run: &str) -> HolderInfo {
    // Each run on a host of its own: liveness is judged by the lease's times alone.
    HolderInfo {
        user: "tester".into(),
        host: format!("host-{run}"),
        pid: 4242,
        run_id: run.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_lock_refuses_a_live_lease_even_with_force_and_takes_an_expired_one() {
    skip_unless_root!();
    let env = Env::default().await;
    let opts = LockOptions {
        duration: Duration::from_secs(3),
        observe: Duration::from_secs(2),
        ..LockOptions::new(Duration::from_secs(3))
    };
    // Liveness is judged by the API server's clock, read from its answers' Date header
    // (the same machine's here: no offset).
    assert_eq!(
        aks_patch::kube::lock::server_clock_offset(&env.client).await,
        Some(jiff::SignedDuration::ZERO)
    );
    let a = Lock::acquire_with(&env.client, holder("a"), &opts, false)
        .await
        .expect("first acquire");
    // Held and live: refused with the holder, with or without force.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for force in [false, true] {
        let e = Lock::acquire_with(&env.client, holder("b"), &opts, force)
            .await
            .err()
            .expect("second acquire refused");
        match &e {
            LockError::Held { holder, verdict, .. } => {
                assert_eq!(holder, &a.holder().identity());
                assert!(
                    matches!(verdict, aks_patch::kube::lock::HeldVerdict::Live { .. }),
                    "renewed every second: live ({e})"
                );
            }
            other => panic!("expected Held, got {other}"),
        }
        assert!(e.to_string().contains("tester@host-a pid 4242 run a"), "{e}");
        assert_eq!(e.to_string().contains("even with --force-unlock"), force, "{e}");
    }
    // Renewals keep it alive past its duration.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!a.is_lost());
    let st = Lock::inspect(&env.client, &opts)
        .await
        .expect("inspect")
        .expect("lease");
    assert!(!st.expired_by_clock(jiff::Timestamp::now()), "{st:?}");
    assert_eq!(st.holder_info.as_ref().map(|h| h.run_id.as_str()), Some("a"));
    assert_eq!(st.transitions, 0, "nobody took it over");
    a.release().await.expect("release");
    assert!(
        Lock::inspect(&env.client, &opts).await.expect("inspect").is_none(),
        "deleted"
    );

    // Free again: taken by b.
    let b = Lock::acquire_with(&env.client, holder("b"), &opts, false)
        .await
        .expect("acquire after release");
    // b dies without releasing: renewals stop, the lease expires.
    drop(b);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let transitions = Lock::inspect(&env.client, &opts).await.unwrap().unwrap().transitions;
    // Expired: a plain acquire takes it, after watching it for a renewal period.
    let c = Lock::acquire_with(&env.client, holder("c"), &opts, false)
        .await
        .expect("an expired lease is taken without force");
    assert!(c.previous_holder().unwrap_or("").contains("run b"));
    let why = c.takeover_reason().unwrap_or_default();
    assert!(
        why.contains("expired") && why.contains("not renewed while watched"),
        "{why}"
    );
    let st = Lock::inspect(&env.client, &opts).await.unwrap().unwrap();
    assert_eq!(st.transitions, transitions + 1);

    // Someone else writes the lease: c learns it lost the lock.
    let api: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(env.client.clone(), "kube-system");
    let mut l = api.get("aks-patch").await.unwrap();
    l.spec.as_mut().unwrap().holder_identity = Some(holder("d").identity());
    api.replace("aks-patch", &Default::default(), &l).await.unwrap();
    let lost = tokio::time::timeout(Duration::from_secs(5), c.lost())
        .await
        .expect("c notices within a renewal period");
    assert!(lost.to_string().contains("run d"), "{lost}");
    assert!(c.is_lost());
    assert!(c.release().await.is_err(), "c must not delete d's lease");
    assert!(Lock::inspect(&env.client, &opts).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_lock_of_a_dead_process_on_this_host_is_named_dead_and_taken_with_force() {
    skip_unless_root!();
    let env = Env::default().await;
    let opts = LockOptions::new(Duration::from_secs(60));
    // A process of this host that has ended: its pid is no aks-patch any more.
    let gone = std::process::Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    let _ = gone.wait_with_output();
    let dead = HolderInfo {
        user: "tester".into(),
        host: "e2e".into(),
        pid: gone_pid,
        run_id: "dead".into(),
    };
    let guard = Lock::acquire_with(&env.client, dead, &opts, false).await.unwrap();
    drop(guard); // stops renewing; the lease stays, fresh
    let me = HolderInfo {
        user: "tester".into(),
        host: "e2e".into(),
        pid: std::process::id(),
        run_id: "next".into(),
    };
    let e = Lock::acquire_with(&env.client, me.clone(), &opts, false)
        .await
        .err()
        .expect("refused without force");
    let text = e.to_string();
    assert!(
        matches!(&e, LockError::Held { verdict: aks_patch::kube::lock::HeldVerdict::Dead { pid, .. }, .. } if *pid == gone_pid),
        "{text}"
    );
    assert!(
        text.contains("that run is dead") && text.contains("--resume --force-unlock"),
        "{text}"
    );
    let t0 = Instant::now();
    let g = Lock::acquire_with(&env.client, me, &opts, true)
        .await
        .expect("force takes a dead process's lease at once");
    assert!(t0.elapsed() < Duration::from_secs(5), "no waiting for expiry");
    assert!(g.takeover_reason().unwrap_or_default().contains("dead"));
    g.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_acquires_one_wins() {
    skip_unless_root!();
    let env = Env::default().await;
    let opts = LockOptions::new(Duration::from_secs(30));
    let (x, y) = tokio::join!(
        Lock::acquire_with(&env.client, holder("x"), &opts, false),
        Lock::acquire_with(&env.client, holder("y"), &opts, false)
    );
    let (won, lost) = match (x, y) {
        (Ok(g), Err(e)) | (Err(e), Ok(g)) => (g, e),
        (Ok(_), Ok(_)) => panic!("both acquired the lock"),
        (Err(a), Err(b)) => panic!("neither acquired: {a}; {b}"),
    };
    assert!(matches!(lost, LockError::Held { .. }), "{lost}");
    won.release().await.expect("release");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kured_lock_is_honoured_and_taken() {
    skip_unless_root!();
    // No kured: nothing to do.
    let env = Env::default().await;
    assert_eq!(kured_lock_holder(&env.client).await.expect("read"), None);
    assert_eq!(
        take_kured_lock(&env.client, USER0, Duration::from_secs(600))
            .await
            .expect("take"),
        KuredLock::NotInstalled
    );
    release_kured_lock(&env.client, USER0)
        .await
        .expect("nothing to release");
    env.stop().await;

    // kured holds its lock for a node: honoured.
    let mut s = Scenario::default_scenario();
    s.kured = Some(KuredSpec {
        lock_holder: Some(USER1.into()),
    });
    let env = Env::start(s).await;
    assert_eq!(
        kured_lock_holder(&env.client).await.expect("read").as_deref(),
        Some(USER1)
    );
    let e = take_kured_lock(&env.client, USER0, Duration::from_secs(600))
        .await
        .expect_err("kured holds it");
    assert!(matches!(e, KuredError::Held { ref holder } if holder == USER1), "{e}");
    assert!(e.to_string().contains(USER1));
    env.stop().await;

    // kured installed, lock free: taken for our node, then given back.
    let mut s = Scenario::default_scenario();
    s.kured = Some(KuredSpec { lock_holder: None });
    let env = Env::start(s).await;
    assert_eq!(kured_lock_holder(&env.client).await.expect("read"), None);
    let taken = take_kured_lock(&env.client, USER0, Duration::from_secs(600))
        .await
        .expect("take");
    assert_eq!(
        taken,
        KuredLock::Taken {
            node_id: format!("aks-patch:{USER0}")
        }
    );
    assert_eq!(
        kured_lock_holder(&env.client).await.expect("read"),
        Some(format!("aks-patch:{USER0}"))
    );
    // What kured itself would read: its single-lock JSON.
    let ds = env
        .sim
        .shared
        .store
        .get(aks_sim::store::DAEMONSETS, Some("kube-system"), "kured")
        .expect("kured DaemonSet");
    let v: serde_json::Value = serde_json::from_str(
        ds["metadata"]["annotations"]["weave.works/kured-node-lock"]
            .as_str()
            .expect("annotation"),
    )
    .expect("JSON");
    assert_eq!(v["nodeID"], format!("aks-patch:{USER0}"));
    assert_eq!(v["TTL"], 600_000_000_000i64);
    // The emulator's controller notices annotation changes within a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let taken_events = env.events("kured-lock");
    assert!(
        taken_events
            .iter()
            .any(|e| e.node.as_deref() == Some(USER0) || e.detail.contains(USER0)),
        "the emulator saw the lock taken: {taken_events:?}"
    );
    release_kured_lock(&env.client, USER0).await.expect("release");
    assert_eq!(kured_lock_holder(&env.client).await.expect("read"), None);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        env.events("kured-lock").len() > taken_events.len(),
        "the emulator saw the lock released: {:?}",
        env.events("kured-lock")
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reboot_wait_times_out_with_the_node_state() {
    skip_unless_root!();
    let env = Env::default().await;
    let boot = env.boot_id(USER0);
    let start = Instant::now();
    let e = wait_for_reboot(&env.client, USER0, &boot, Duration::from_secs(3), |_| {})
        .await
        .expect_err("no reboot happened");
    assert!(start.elapsed() < Duration::from_secs(8));
    let RebootError::Timeout { ref last, .. } = e else {
        panic!("expected a timeout, got {e}")
    };
    let seen = last.node.as_ref().expect("the node was found");
    assert!(!last.boot_id_changed);
    assert_eq!(seen.readiness, Readiness::Ready);
    assert_eq!(seen.boot_id.as_deref(), Some(boot.as_str()));
    let text = e.to_string();
    eprintln!("reboot timeout: {text}");
    assert!(text.contains(USER0) && text.contains("bootID unchanged"), "{text}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reboot_over_ssh_is_seen_through_a_new_boot_id() {
    skip_unless_root!();
    let env = Env::default().await;
    let spec = env.sim.shared.node(USER1).expect("node").clone();
    let boot = env.boot_id(USER1);
    let key = env.sim.state_dir().join("ssh/id_ed25519");
    let out = tokio::process::Command::new("ssh")
        .arg("-i")
        .arg(&key)
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            &format!("azureuser@{}", spec.ip),
            "nohup sh -c \"sleep 1; sudo reboot\" >/dev/null 2>&1 &",
        ])
        .output()
        .await
        .expect("ssh runs");
    assert!(out.status.success(), "ssh: {}", String::from_utf8_lossy(&out.stderr));
    let seen = Arc::new(Mutex::new(vec![]));
    let s2 = seen.clone();
    let row = wait_for_reboot(&env.client, USER1, &boot, Duration::from_secs(60), move |e| {
        s2.lock().unwrap().push(e)
    })
    .await
    .expect("the node comes back");
    assert_ne!(row.boot_id.as_deref(), Some(boot.as_str()));
    assert_eq!(row.readiness, Readiness::Ready);
    assert_eq!(row.boot_id.as_deref(), Some(env.boot_id(USER1).as_str()));
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|e| matches!(e, aks_patch::kube::RebootEvent::Booted { .. })),
        "{seen:?}"
    );
    // The emulator's log: reboot, then node-booted, then node-ready, in that order.
    let kinds: Vec<String> = env
        .sim
        .events()
        .into_iter()
        .filter(|e| e.node.as_deref() == Some(USER1))
        .map(|e| e.kind)
        .filter(|k| k == "reboot" || k == "node-booted" || k == "node-ready")
        .collect();
    let pos = |k: &str| kinds.iter().position(|x| x == k).unwrap_or(usize::MAX);
    assert!(
        pos("reboot") < pos("node-booted") && pos("node-booted") <= pos("node-ready"),
        "{kinds:?}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_5xx_and_resets_are_retried_for_reads() {
    skip_unless_root!();
    let env = Env::default().await;
    let n = env.sim.shared.nodes.len();
    env.sim
        .fault(Fault::KubeError { count: 3, status: 503 })
        .expect("fault");
    let rows = list_node_infos(&env.client, None)
        .await
        .expect("retried through three 503s");
    assert_eq!(rows.len(), n);
    env.sim.fault(Fault::KubeError { count: 2, status: 0 }).expect("fault");
    let rows = list_node_infos(&env.client, None)
        .await
        .expect("retried through two resets");
    assert_eq!(rows.len(), n);
    env.sim
        .fault(Fault::KubeError { count: 2, status: 500 })
        .expect("fault");
    assert!(cordon(&env.client, USER0).await.is_ok(), "cordon retried through 500s");
    // A refusal is not retried: one request, the error at once.
    env.sim
        .fault(Fault::KubeError { count: 5, status: 422 })
        .expect("fault");
    let e = list_node_infos(&env.client, None).await.expect_err("a 422 is final");
    assert_eq!(e.status_code(), Some(422));
    assert_eq!(
        env.sim.shared.faults.describe()["kubeErrorLeft"],
        4,
        "the 422 was not retried"
    );
    // More failures than our patience: a clear error once it runs out, not later.
    env.sim
        .fault(Fault::KubeError {
            count: 10_000,
            status: 503,
        })
        .expect("fault");
    let start = Instant::now();
    let e = list_node_infos(&env.client, None).await.expect_err("gives up");
    assert!(
        start.elapsed() < aks_patch::retry::PATIENCE + Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(e.status_code(), Some(503));
    let text = e.to_string();
    eprintln!("5xx: {text}");
    assert!(text.contains("listing nodes") && text.contains("503"), "{text}");
    env.sim.fault(Fault::Clear).expect("clear");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pdbs_on_one_pod_fail_at_once() {
    skip_unless_root!();
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    let env = Env::default().await;
    let api: Api<PodDisruptionBudget> = Api::namespaced(env.client.clone(), "shop");
    let existing = api.get("storefront-pdb").await.expect("storefront-pdb");
    let mut second = PodDisruptionBudget::default();
    second.metadata.name = Some("storefront-extra".into());
    second.metadata.namespace = Some("shop".into());
    second.spec = existing.spec.clone();
    api.create(&Default::default(), &second).await.expect("second PDB");
    cordon(&env.client, USER0).await.expect("cordon");
    let start = Instant::now();
    let e = drain(
        &env.client,
        USER0,
        &DrainOptions {
            timeout: Duration::from_secs(60),
            ..consent()
        },
        |_| {},
        &CancellationToken::new(),
    )
    .await
    .expect_err("two PDBs cover storefront");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "fatal at once: {:?}",
        start.elapsed()
    );
    let DrainError::MultiplePdbs { ref pod, ref pdbs, .. } = e else {
        panic!("expected MultiplePdbs, got {e}")
    };
    assert!(pod.name.starts_with("storefront"), "{pod}");
    assert_eq!(pdbs, &["shop/storefront-extra", "shop/storefront-pdb"]);
    let text = e.to_string();
    eprintln!("two PDBs: {text}");
    assert!(text.contains("more than one PodDisruptionBudget"), "{text}");
    // One refusal per storefront pod at most: no retries of a permanent error.
    let refusals = env
        .events("eviction-refused")
        .into_iter()
        .filter(|e| e.detail.contains("more than one"))
        .count();
    let storefronts = env
        .pods_on(USER0)
        .await
        .iter()
        .filter(|p| pod_name(p).starts_with("shop/storefront"))
        .count();
    assert!(refusals >= 1 && refusals <= storefronts.max(1), "{refusals} refusals");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_plugin_kubeconfigs_work() {
    skip_unless_root!();
    use base64::Engine;
    use std::os::unix::fs::PermissionsExt;
    let env = Env::default().await;
    let dir = tempfile::tempdir().expect("temp dir");
    // A stand-in for kubelogin: prints an ExecCredential with the emulator's user token;
    // with any other argument it fails as kubelogin does when the login expired.
    let plugin = dir.path().join("kubelogin");
    std::fs::write(
        &plugin,
        format!(
            "#!/bin/sh\nif [ \"$1\" != get-token ]; then echo LEAKED-TOKEN-123; echo 'AADSTS70043: The refresh token has expired' >&2; exit 3; fi\ncat <<'EOF'\n{{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{}\"}}}}\nEOF\n",
            env.sim.shared.tokens.kube_user
        ),
    )
    .expect("write plugin");
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let ca = base64::engine::general_purpose::STANDARD.encode(&env.sim.shared.ca.ca_pem);
    let kubeconfig = |args: &str| {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: sim\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\ncontexts:\n- name: sim\n  context: {{cluster: sim, user: aad}}\ncurrent-context: sim\nusers:\n- name: aad\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: {}\n      args: [{args}]\n      env:\n      - {{name: AAD_SERVICE_PRINCIPAL_CLIENT_SECRET, value: super-secret-value}}\n      interactiveMode: Never\n",
            env.sim.endpoints().kube_url,
            plugin.display()
        )
    };
    let client = aks_patch::kube::client_from_kubeconfig_yaml(&kubeconfig("get-token"), None)
        .await
        .expect("client");
    let rows = list_node_infos(&client, None)
        .await
        .expect("listed with the plugin's token");
    assert_eq!(rows.len(), env.sim.shared.nodes.len());
    // A plugin that fails: the error says so with the plugin's stderr, and leaks neither its
    // stdout nor the secrets in its environment.
    let e = match aks_patch::kube::client_from_kubeconfig_yaml(&kubeconfig("wrong"), None).await {
        Err(e) => e,
        Ok(client) => list_node_infos(&client, None).await.expect_err("the plugin fails"),
    };
    let mut text = format!("{e} {e:?}");
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        text.push_str(&format!(" | {s} {s:?}"));
        src = s.source();
    }
    eprintln!("exec plugin: {e}");
    assert!(text.contains("AADSTS70043") && text.contains("kubelogin"), "{text}");
    assert!(!text.contains("LEAKED-TOKEN-123"), "{text}");
    assert!(!text.contains("super-secret-value"), "{text}");
    env.stop().await;
}

/// One pager for every list: pages of any size add up to what one unpaged list returns,
/// with label and field selectors kept on every page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_lists_add_up_to_one_unpaged_list_with_selectors_on_every_page() {
    skip_unless_root!();
    use aks_patch::kube::{list_all, list_paged};
    use k8s_openapi::api::core::v1::Node;
    let env = Env::default().await;
    fn names<K: kube::Resource>(items: &[K]) -> Vec<String> {
        items
            .iter()
            .map(|o| o.meta().name.clone().unwrap_or_default())
            .collect()
    }

    let nodes: Api<Node> = Api::all(env.client.clone());
    let unpaged = nodes.list(&ListParams::default()).await.expect("list nodes").items;
    assert!(unpaged.len() > 2, "enough nodes to page");
    let first_page = nodes.list(&ListParams::default().limit(2)).await.expect("one page");
    assert_eq!(first_page.items.len(), 2, "the emulator pages");
    assert!(first_page.metadata.continue_.is_some());
    let paged = list_paged(&nodes, &ListParams::default(), 2, "listing nodes")
        .await
        .expect("every page");
    assert_eq!(names(&paged), names(&unpaged));
    assert_eq!(
        names(&list_all(&nodes, &ListParams::default(), "listing nodes").await.unwrap()),
        names(&unpaged)
    );

    let user_pool = ListParams::default().labels("agentpool=user");
    let users = list_paged(&nodes, &user_pool, 1, "listing nodes").await.unwrap();
    assert_eq!(
        names(&users),
        [USER0, USER1, USER2],
        "the label selector holds on every page"
    );

    let pods: Api<Pod> = Api::all(env.client.clone());
    let on_user0 = ListParams::default().fields(&format!("spec.nodeName={USER0}"));
    let unpaged = pods.list(&on_user0).await.unwrap().items;
    assert!(unpaged.len() > 1, "{}", unpaged.len());
    let paged = list_paged(&pods, &on_user0, 1, "listing pods").await.unwrap();
    assert_eq!(names(&paged), names(&unpaged), "the field selector holds on every page");
    assert_eq!(env.pods_on(USER0).await.len(), paged.len());
    env.stop().await;
}
