//! The cluster-wide lock that keeps two aks-patch runs apart.
//!
//! **Lease** `kube-system/aks-patch` (coordination.k8s.io/v1): taken by create, or by replace
//! carrying the resourceVersion read (a 409 means someone else won), renewed every third of
//! its duration by a background task, and released (deleted) at the end of the run. A lease
//! held by another run is refused with its holder, when it was taken and when it was last
//! renewed; `force` takes it over (`leaseTransitions` + 1).
//!
//! Staleness is judged first by the lease's `renewTime` against this machine's clock, which
//! can be skewed from the other holder's. A lease that looks expired is then watched for a
//! short while: if it is renewed meanwhile, its holder is alive whatever the clocks say.
//!
//! Also the holder identity ([`HolderInfo`]) and fencing ([`LockGuard::fence`]). kured's
//! reboot lock is in [`super::kured`].

use super::error::{describe_kube_error, is_transient, KubeError};
use super::kured::{KURED_DAEMONSET, KURED_LOCK_ANNOTATION, KURED_NAMESPACE};
use super::retry::with_retry;
use crate::settings::Settings;
use ::kube::api::{Api, DeleteParams, PostParams, Preconditions};
use ::kube::Client;
use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub const LEASE_NAMESPACE: &str = "kube-system";
pub const LEASE_NAME: &str = "aks-patch";
/// Annotations on the Lease that say who holds it, field by field.
pub const ANNOTATION_USER: &str = "aks-patch.io/user";
pub const ANNOTATION_HOST: &str = "aks-patch.io/host";
pub const ANNOTATION_PID: &str = "aks-patch.io/pid";
pub const ANNOTATION_RUN_ID: &str = "aks-patch.io/run-id";

/// Who holds the lock: shown to whoever is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HolderInfo {
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub run_id: String,
}

impl HolderInfo {
    /// This process: the user and host name as [`Settings`] resolved them, the pid.
    pub fn current(settings: &Settings, run_id: impl Into<String>) -> HolderInfo {
        HolderInfo {
            user: settings.user.clone(),
            host: settings.host.clone(),
            pid: std::process::id(),
            run_id: run_id.into(),
        }
    }

    /// The Lease's `holderIdentity`: `user@host pid N run ID`.
    pub fn identity(&self) -> String {
        format!("{}@{} pid {} run {}", self.user, self.host, self.pid, self.run_id)
    }

    fn annotations(&self) -> BTreeMap<String, String> {
        [
            (ANNOTATION_USER, self.user.clone()),
            (ANNOTATION_HOST, self.host.clone()),
            (ANNOTATION_PID, self.pid.to_string()),
            (ANNOTATION_RUN_ID, self.run_id.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// Where the lease lives and how it is judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOptions {
    pub namespace: String,
    pub name: String,
    /// `leaseDurationSeconds`: renewed every third of it; a lease not renewed for longer is stale.
    pub duration: Duration,
    /// How long to watch a lease that looks expired by the clocks before calling it stale.
    pub observe: Duration,
}

impl LockOptions {
    pub fn new(duration: Duration) -> LockOptions {
        let duration = duration.max(Duration::from_secs(3));
        LockOptions {
            namespace: LEASE_NAMESPACE.into(),
            name: LEASE_NAME.into(),
            duration,
            observe: (duration / 3 + Duration::from_secs(1)).min(Duration::from_secs(5)),
        }
    }
}

/// A lease as read: who holds it and since when.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseState {
    /// `holderIdentity`; `None` when released.
    pub holder: Option<String>,
    /// The holder's details, when it is an aks-patch run.
    pub holder_info: Option<HolderInfo>,
    pub acquired: Option<DateTime<Utc>>,
    pub renewed: Option<DateTime<Utc>>,
    pub duration: Option<Duration>,
    pub transitions: i32,
    pub resource_version: Option<String>,
}

impl LeaseState {
    fn of(lease: &Lease) -> LeaseState {
        let spec = lease.spec.as_ref();
        let ann = lease.metadata.annotations.as_ref();
        let holder_info = ann.and_then(|a| {
            Some(HolderInfo {
                user: a.get(ANNOTATION_USER)?.clone(),
                host: a.get(ANNOTATION_HOST)?.clone(),
                pid: a.get(ANNOTATION_PID)?.parse().ok()?,
                run_id: a.get(ANNOTATION_RUN_ID)?.clone(),
            })
        });
        LeaseState {
            holder: spec.and_then(|s| s.holder_identity.clone()).filter(|h| !h.is_empty()),
            holder_info,
            acquired: spec
                .and_then(|s| s.acquire_time.as_ref())
                .and_then(super::time::micro_time),
            renewed: spec
                .and_then(|s| s.renew_time.as_ref())
                .and_then(super::time::micro_time),
            duration: spec
                .and_then(|s| s.lease_duration_seconds)
                .map(|s| Duration::from_secs(s.max(0) as u64)),
            transitions: spec.and_then(|s| s.lease_transitions).unwrap_or(0),
            resource_version: lease.metadata.resource_version.clone(),
        }
    }

    /// Time since the last renewal by this machine's clock (`None` if never renewed or in
    /// the future).
    pub fn renewed_ago(&self, now: DateTime<Utc>) -> Option<Duration> {
        self.renewed.and_then(|r| (now - r).to_std().ok())
    }

    /// Expired by this machine's clock: not renewed for longer than its duration.
    pub fn expired_by_clock(&self, now: DateTime<Utc>) -> bool {
        match (self.renewed.or(self.acquired), self.duration) {
            (Some(r), Some(d)) => (now - r).to_std().map(|ago| ago > d).unwrap_or(false),
            // No renewal time or no duration: nothing says it is alive.
            _ => true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{}", held_text(.holder, .acquired, .renewed_ago, *.stale, .lease))]
    Held {
        /// `namespace/name` of the Lease.
        lease: String,
        holder: String,
        acquired: Option<DateTime<Utc>>,
        renewed_ago: Option<Duration>,
        /// Not renewed for longer than its duration (by this machine's clock), and not
        /// renewed while we watched.
        stale: bool,
    },
    #[error(
        "another aks-patch run holds the lock (Lease {lease}): {holder}; that run is alive (pid {pid} on this host, {host}), so the lock is not taken over, even with --force-unlock; wait for it to finish, or stop it (kill -INT {pid}) and let it leave the cluster safe"
    )]
    HeldByLiveProcess {
        lease: String,
        holder: String,
        host: String,
        pid: u32,
    },
    #[error(
        "the aks-patch lock (Lease {lease}) was lost: {reason}; stop now: another run may be changing the cluster"
    )]
    Lost { lease: String, reason: String },
    #[error("cannot confirm that the aks-patch lock (Lease {lease}) is still ours: renewing it failed ({reason}); no further change is made without it")]
    Unconfirmed { lease: String, reason: String },
    #[error("kured holds its reboot lock for {holder} (annotation {KURED_LOCK_ANNOTATION} on DaemonSet {KURED_NAMESPACE}/{KURED_DAEMONSET}): it is rebooting that node; wait for it to finish, or pause kured")]
    KuredHeld { holder: String },
    #[error("kured's lock annotation on DaemonSet {KURED_NAMESPACE}/{KURED_DAEMONSET} is not in a format aks-patch knows ({detail}); fix or remove the annotation by hand")]
    KuredUnreadable { detail: String },
    #[error("kured's lock kept changing under us (DaemonSet {KURED_NAMESPACE}/{KURED_DAEMONSET} was updated {attempts} times while we tried); retry")]
    KuredBusy { attempts: u32 },
    #[error(transparent)]
    Kube(#[from] KubeError),
}

fn held_text(
    holder: &str,
    acquired: &Option<DateTime<Utc>>,
    renewed_ago: &Option<Duration>,
    stale: bool,
    lease: &str,
) -> String {
    let mut s = format!("another aks-patch run holds the lock (Lease {lease}): {holder}");
    if let Some(a) = acquired {
        s.push_str(&format!(
            ", since {}",
            a.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    match renewed_ago {
        Some(ago) => s.push_str(&format!(", last renewed {}s ago", ago.as_secs())),
        None => s.push_str(", never renewed"),
    }
    if stale {
        s.push_str(
            " (judged by the lease's renewTime against this machine's clock, and it was not renewed while we watched): \
             it looks stale; if that run is dead, rerun with --force-unlock",
        );
    } else {
        s.push_str(
            " (judged by the lease's renewTime against this machine's clock): it is live; wait for that run to finish",
        );
    }
    s
}

/// The aks-patch lock.
pub struct Lock;

impl Lock {
    /// Take the lock `kube-system/aks-patch` for `duration` (renewed in the background).
    /// `force` takes it over from whoever holds it.
    pub async fn acquire(
        client: &Client,
        holder: HolderInfo,
        duration: Duration,
        force: bool,
    ) -> Result<LockGuard, LockError> {
        Lock::acquire_with(client, holder, &LockOptions::new(duration), force).await
    }

    /// [`Lock::acquire`] with the lease's place and timings spelled out.
    pub async fn acquire_with(
        client: &Client,
        holder: HolderInfo,
        opts: &LockOptions,
        force: bool,
    ) -> Result<LockGuard, LockError> {
        let api: Api<Lease> = Api::namespaced(client.clone(), &opts.namespace);
        let lease_name = format!("{}/{}", opts.namespace, opts.name);
        let identity = holder.identity();
        let what = format!("reading the lock (Lease {lease_name})");
        let existing = with_retry(&what, || api.get_opt(&opts.name))
            .await
            .map_err(|e| KubeError::api(what, e))?;
        let now = Utc::now();
        let (lease, previous) = match existing {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(opts.name.clone()),
                        namespace: Some(opts.namespace.clone()),
                        annotations: Some(holder.annotations()),
                        ..Default::default()
                    },
                    spec: Some(lease_spec(&identity, opts.duration, 0)),
                };
                match api.create(&PostParams::default(), &lease).await {
                    Ok(l) => (l, None),
                    Err(::kube::Error::Api(s)) if s.code == 409 => {
                        return Err(held_error(&api, opts, &lease_name).await);
                    }
                    Err(e) => {
                        return Err(KubeError::api(format!("taking the lock (creating Lease {lease_name})"), e).into())
                    }
                }
            }
            Some(current) => {
                let state = LeaseState::of(&current);
                if let (Some(h), Some(info)) = (&state.holder, &state.holder_info) {
                    // Clocks and renewals can lie (an API server that dropped the renewals);
                    // a process on this very host cannot: never take a live run's lock.
                    if info.host == holder.host && info.pid != holder.pid && process_is_aks_patch(info.pid) {
                        return Err(LockError::HeldByLiveProcess {
                            lease: lease_name,
                            holder: h.clone(),
                            host: info.host.clone(),
                            pid: info.pid,
                        });
                    }
                }
                if let Some(h) = &state.holder {
                    if !force {
                        let mut stale = state.expired_by_clock(now);
                        if stale {
                            stale = !renewed_while_watching(&api, opts, &state).await?;
                        }
                        return Err(LockError::Held {
                            lease: lease_name,
                            holder: h.clone(),
                            acquired: state.acquired,
                            renewed_ago: state.renewed_ago(Utc::now()),
                            stale,
                        });
                    }
                }
                let transitions = if state.holder.is_some() {
                    state.transitions + 1
                } else {
                    state.transitions
                };
                let mut lease = current.clone();
                lease.spec = Some(lease_spec(&identity, opts.duration, transitions));
                let ann = lease.metadata.annotations.get_or_insert_with(BTreeMap::new);
                ann.extend(holder.annotations());
                // The resourceVersion we read: if anyone changed the lease since, this fails.
                match api.replace(&opts.name, &PostParams::default(), &lease).await {
                    Ok(l) => (l, state.holder.clone()),
                    Err(::kube::Error::Api(s)) if s.code == 409 => {
                        return Err(held_error(&api, opts, &lease_name).await);
                    }
                    Err(e) => {
                        return Err(KubeError::api(format!("taking the lock (updating Lease {lease_name})"), e).into())
                    }
                }
            }
        };
        if let Some(p) = &previous {
            tracing::info!("took over the aks-patch lock from {p}");
        }
        let (lost_tx, lost_rx) = watch::channel(None::<String>);
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(Renewer {
            api: api.clone(),
            opts: opts.clone(),
            identity,
            lease: tokio::sync::Mutex::new((lease, tokio::time::Instant::now())),
            lost: lost_tx,
            auth_failed: std::sync::atomic::AtomicBool::new(false),
        });
        let task = tokio::spawn(renew_loop(shared.clone(), stop_rx));
        Ok(LockGuard {
            api,
            renewer: shared,
            opts: opts.clone(),
            holder,
            previous_holder: previous,
            lost_rx,
            stop_tx,
            task: Some(task),
            released: false,
        })
    }

    /// The lease as it is now (`None`: nobody ever took it).
    pub async fn inspect(client: &Client, opts: &LockOptions) -> Result<Option<LeaseState>, LockError> {
        let api: Api<Lease> = Api::namespaced(client.clone(), &opts.namespace);
        let what = format!("reading the lock (Lease {}/{})", opts.namespace, opts.name);
        let l = with_retry(&what, || api.get_opt(&opts.name))
            .await
            .map_err(|e| KubeError::api(what, e))?;
        Ok(l.as_ref().map(LeaseState::of))
    }
}

fn lease_spec(identity: &str, duration: Duration, transitions: i32) -> LeaseSpec {
    let now = super::time::now_micro();
    LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(duration.as_secs().clamp(1, i32::MAX as u64) as i32),
        acquire_time: Some(now.clone()),
        renew_time: Some(now),
        lease_transitions: Some(transitions),
        ..Default::default()
    }
}

/// After losing a race (409): who won.
async fn held_error(api: &Api<Lease>, opts: &LockOptions, lease_name: &str) -> LockError {
    match with_retry(&format!("reading the lock (Lease {lease_name})"), || {
        api.get_opt(&opts.name)
    })
    .await
    {
        Ok(Some(l)) => {
            let st = LeaseState::of(&l);
            LockError::Held {
                lease: lease_name.to_string(),
                holder: st.holder.clone().unwrap_or_else(|| "(another run, just now)".into()),
                acquired: st.acquired,
                renewed_ago: st.renewed_ago(Utc::now()),
                stale: false,
            }
        }
        _ => LockError::Held {
            lease: lease_name.to_string(),
            holder: "(another run, just now)".into(),
            acquired: None,
            renewed_ago: None,
            stale: false,
        },
    }
}

/// Watch a lease that looks expired for `opts.observe`: true if it changed meanwhile.
async fn renewed_while_watching(api: &Api<Lease>, opts: &LockOptions, seen: &LeaseState) -> Result<bool, LockError> {
    let deadline = tokio::time::Instant::now() + opts.observe;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500).min(opts.observe)).await;
        let what = format!("watching the lock (Lease {}/{})", opts.namespace, opts.name);
        let now = with_retry(&what, || api.get_opt(&opts.name))
            .await
            .map_err(|e| KubeError::api(what, e))?;
        match now {
            None => return Ok(true),
            Some(l) => {
                let st = LeaseState::of(&l);
                if st.resource_version != seen.resource_version || st.renewed != seen.renewed {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

/// What the renew task and [`LockGuard::fence`] share: the lease as last written by us, and
/// when that write succeeded. One renewal at a time (the mutex), so the two never race each
/// other into a 409.
struct Renewer {
    api: Api<Lease>,
    opts: LockOptions,
    identity: String,
    lease: tokio::sync::Mutex<(Lease, tokio::time::Instant)>,
    lost: watch::Sender<Option<String>>,
    /// The API server refused our credentials (401/403) while renewing.
    auth_failed: std::sync::atomic::AtomicBool,
}

/// The outcome of one renewal attempt.
enum Renewal {
    Renewed,
    /// Failed for now; the lease may still be ours.
    Failed(String),
    /// It is not ours any more.
    Lost(String),
}

impl Renewer {
    fn lose(&self, reason: String) -> String {
        if self.lost.borrow().is_none() {
            tracing::error!("the aks-patch lock was lost: {reason}");
            let _ = self.lost.send(Some(reason.clone()));
        }
        self.lost.borrow().clone().unwrap_or(reason)
    }

    /// Write the lease once with a new renewTime (carrying the resourceVersion we hold).
    async fn renew_once(&self) -> Renewal {
        if let Some(r) = self.lost.borrow().clone() {
            return Renewal::Lost(r);
        }
        let mut guard = self.lease.lock().await;
        for _ in 0..3 {
            let mut lease = guard.0.clone();
            if let Some(spec) = lease.spec.as_mut() {
                spec.renew_time = Some(super::time::now_micro());
            }
            match self.api.replace(&self.opts.name, &PostParams::default(), &lease).await {
                Ok(l) => {
                    *guard = (l, tokio::time::Instant::now());
                    return Renewal::Renewed;
                }
                Err(::kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
                    // Changed or deleted behind our back: see by whom.
                    match self.api.get_opt(&self.opts.name).await {
                        Ok(Some(l)) if LeaseState::of(&l).holder.as_deref() == Some(self.identity.as_str()) => {
                            guard.0 = l;
                            continue;
                        }
                        Ok(Some(l)) => {
                            let who = LeaseState::of(&l).holder.unwrap_or_else(|| "nobody (released)".into());
                            return Renewal::Lost(self.lose(format!("it was taken over by {who}")));
                        }
                        Ok(None) => return Renewal::Lost(self.lose("the Lease was deleted by someone else".into())),
                        Err(e) => return Renewal::Failed(describe_kube_error(&e)),
                    }
                }
                Err(e) if is_transient(&e) => return Renewal::Failed(describe_kube_error(&e)),
                Err(e) => {
                    if matches!(&e, ::kube::Error::Api(s) if s.code == 401 || s.code == 403)
                        || super::error::is_credential_error(&e)
                    {
                        self.auth_failed.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    return Renewal::Lost(self.lose(format!("it could not be renewed: {}", describe_kube_error(&e))));
                }
            }
        }
        Renewal::Failed("the Lease kept changing while we renewed it".into())
    }

    /// When the lease was last written by us.
    async fn last_ok(&self) -> tokio::time::Instant {
        self.lease.lock().await.1
    }
}

async fn renew_loop(r: Arc<Renewer>, mut stop: watch::Receiver<bool>) {
    let period = (r.opts.duration / 3).max(Duration::from_millis(500));
    let mut wait = period;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        match r.renew_once().await {
            Renewal::Renewed => wait = period,
            Renewal::Lost(_) => return,
            Renewal::Failed(why) => {
                // Keep trying while the lease still holds; give it up before others may
                // judge it expired.
                let since = r.last_ok().await.elapsed();
                if since + period >= r.opts.duration {
                    r.lose(format!("it could not be renewed for {}s: {why}", since.as_secs()));
                    return;
                }
                tracing::info!("renewing the aks-patch lock failed ({why}); retrying in 1s");
                wait = Duration::from_secs(1).min(period);
            }
        }
    }
}

/// Whether `pid` is a live aks-patch process on this host (read from `/proc`).
pub fn process_is_aks_patch(pid: u32) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmd) => cmd
            .split(|b| *b == 0)
            .next()
            .is_some_and(|argv0| String::from_utf8_lossy(argv0).contains("aks-patch")),
        Err(_) => false,
    }
}

/// The held lock. Call [`LockGuard::release`] on every path: dropping it only stops the
/// renewals, and the lease then stays until it expires.
pub struct LockGuard {
    api: Api<Lease>,
    renewer: Arc<Renewer>,
    opts: LockOptions,
    holder: HolderInfo,
    previous_holder: Option<String>,
    lost_rx: watch::Receiver<Option<String>>,
    stop_tx: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    released: bool,
}

impl LockGuard {
    pub fn holder(&self) -> &HolderInfo {
        &self.holder
    }

    /// Whom the lock was taken over from with `force`.
    pub fn previous_holder(&self) -> Option<&str> {
        self.previous_holder.as_deref()
    }

    /// `namespace/name` of the Lease.
    pub fn lease(&self) -> String {
        format!("{}/{}", self.opts.namespace, self.opts.name)
    }

    /// Whether renewing failed (the run must stop): `Some(reason)`.
    pub fn lost_reason(&self) -> Option<String> {
        self.lost_rx.borrow().clone()
    }

    /// Renewing failed because the API server refused the credentials (401/403): an
    /// authentication failure rather than another run's doing.
    pub fn auth_failed(&self) -> bool {
        self.renewer.auth_failed.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn is_lost(&self) -> bool {
        self.lost_rx.borrow().is_some()
    }

    /// Resolves with a [`LockError::Lost`] when renewing fails; pending while the lock is
    /// held. Independent of `self`, for use in `select!` beside the work.
    pub fn lost(&self) -> impl Future<Output = LockError> + Send + 'static {
        let mut rx = self.lost_rx.clone();
        let lease = self.lease();
        async move {
            loop {
                if let Some(reason) = rx.borrow_and_update().clone() {
                    return LockError::Lost { lease, reason };
                }
                if rx.changed().await.is_err() {
                    // The renew task ended without a loss: released. Stay pending.
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// Fencing: before a destructive step, prove the lock is still ours by renewing it now
    /// (or by a renewal that succeeded less than `max_age` ago). A failure to renew is not
    /// proof of loss, but no destructive step may follow it: the caller stops.
    pub async fn fence(&self, max_age: Duration) -> Result<(), LockError> {
        let lease = self.lease();
        if let Some(reason) = self.lost_reason() {
            return Err(LockError::Lost { lease, reason });
        }
        if !max_age.is_zero() && self.renewer.last_ok().await.elapsed() < max_age {
            return Ok(());
        }
        match self.renewer.renew_once().await {
            Renewal::Renewed => Ok(()),
            Renewal::Lost(reason) => Err(LockError::Lost { lease, reason }),
            Renewal::Failed(why) => Err(LockError::Unconfirmed { lease, reason: why }),
        }
    }

    /// Stop renewing and give the lock back (delete the Lease, if it is still ours).
    pub async fn release(mut self) -> Result<(), LockError> {
        self.released = true;
        let _ = self.stop_tx.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        let identity = self.holder.identity();
        let lease_name = self.lease();
        let what = format!("releasing the lock (reading Lease {lease_name})");
        let current = with_retry(&what, || self.api.get_opt(&self.opts.name))
            .await
            .map_err(|e| KubeError::api(what, e))?;
        let Some(current) = current else { return Ok(()) };
        let st = LeaseState::of(&current);
        if st.holder.as_deref() != Some(identity.as_str()) {
            return Err(LockError::Lost {
                lease: lease_name,
                reason: format!(
                    "it is held by {} now, so it was left alone",
                    st.holder.unwrap_or_else(|| "nobody".into())
                ),
            });
        }
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: st.resource_version.clone(),
                uid: current.metadata.uid.clone(),
            }),
            ..Default::default()
        };
        match with_retry(&format!("releasing the lock (deleting Lease {lease_name})"), || {
            self.api.delete(&self.opts.name, &dp)
        })
        .await
        {
            Ok(_) => Ok(()),
            Err(::kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(::kube::Error::Api(s)) if s.code == 409 => Err(LockError::Lost {
                lease: lease_name,
                reason: "it changed while we released it, so it was left alone".into(),
            }),
            Err(e) => Err(KubeError::api(
                format!(
                    "releasing the lock (deleting Lease {lease_name}); it expires by itself after {}s",
                    self.opts.duration.as_secs()
                ),
                e,
            )
            .into()),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.stop_tx.send(true);
            if let Some(t) = self.task.take() {
                t.abort();
            }
            tracing::warn!(
                "the aks-patch lock (Lease {}) was not released; it expires by itself after {}s",
                self.lease(),
                self.opts.duration.as_secs()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_expiry_by_clock() {
        let now = Utc::now();
        let st = |renewed_ago: i64, dur: u64| LeaseState {
            holder: Some("x".into()),
            holder_info: None,
            acquired: None,
            renewed: Some(now - chrono::TimeDelta::seconds(renewed_ago)),
            duration: Some(Duration::from_secs(dur)),
            transitions: 0,
            resource_version: None,
        };
        assert!(!st(10, 60).expired_by_clock(now));
        assert!(st(61, 60).expired_by_clock(now));
        assert_eq!(st(10, 60).renewed_ago(now), Some(Duration::from_secs(10)));
        // Renewed "in the future" (skewed clocks): not expired, age unknown.
        assert!(!st(-30, 60).expired_by_clock(now));
        assert_eq!(st(-30, 60).renewed_ago(now), None);
    }

    #[test]
    fn held_message_says_how_staleness_is_judged() {
        let e = LockError::Held {
            lease: "kube-system/aks-patch".into(),
            holder: "alice@box pid 1 run r".into(),
            acquired: None,
            renewed_ago: Some(Duration::from_secs(400)),
            stale: true,
        }
        .to_string();
        assert!(e.contains("alice@box"), "{e}");
        assert!(e.contains("this machine's clock"), "{e}");
        assert!(e.contains("--force-unlock"), "{e}");
    }

    #[test]
    fn holder_identity() {
        let h = HolderInfo {
            user: "alice".into(),
            host: "box".into(),
            pid: 42,
            run_id: "r1".into(),
        };
        assert_eq!(h.identity(), "alice@box pid 42 run r1");
        let settings = Settings::from_lookup(|k| match k {
            "USER" => Some("bob".into()),
            "HOSTNAME" => Some("jumpbox".into()),
            _ => None,
        });
        let cur = HolderInfo::current(&settings, "r2");
        assert_eq!(cur.identity(), format!("bob@jumpbox pid {} run r2", std::process::id()));
    }
}
