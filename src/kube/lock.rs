//! The cluster-wide lock that keeps two aks-patch runs apart.
//!
//! **Lease** `kube-system/aks-patch` (coordination.k8s.io/v1): taken by create, or by replace
//! carrying the resourceVersion read (a 409 means someone else won), renewed every third of
//! its duration by a background task, and released (deleted) at the end of the run. A lease
//! held by another run is refused with its holder, when it was taken and when it was last
//! renewed; `force` takes it over (`leaseTransitions` + 1).
//!
//! Liveness ([`judge`]): a lease whose holder ran on this host is live exactly while that
//! process runs (read from `/proc`), and dead once it is gone, whatever the clocks say. A
//! lease held from another host is live while it was renewed within its own
//! `leaseDurationSeconds`, judged by its `renewTime` against the API server's clock (read
//! from the `Date` of an answer, so this machine's skew does not count); such a lease is
//! never taken over, even with `force`. One that looks expired is then watched for one of
//! its holder's renewal periods: renewed meanwhile, it is live whatever the clocks say;
//! not renewed, it has expired, and any run takes it (what the messages about expiry
//! promise). A dead holder on this host is taken over at once with `force`.
//!
//! Also the holder identity ([`HolderInfo`]) and fencing ([`LockGuard::fence`]). kured's
//! reboot lock is in [`super::kured`].

use super::error::{describe_kube_error, is_transient, KubeError};
use crate::retry::{with_retry, Backoff, RetryPolicy};
use crate::settings::Settings;
use ::kube::api::{Api, DeleteParams, PostParams, Preconditions};
use ::kube::Client;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
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
    /// How long at least to watch a lease that looks expired by the clocks before taking it
    /// (at least one renewal period of the lease's own duration, see [`watch_period`]).
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
    pub acquired: Option<Timestamp>,
    pub renewed: Option<Timestamp>,
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
            acquired: spec.and_then(|s| s.acquire_time.as_ref()).map(|t| t.0),
            renewed: spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0),
            duration: spec
                .and_then(|s| s.lease_duration_seconds)
                .map(|s| Duration::from_secs(s.max(0) as u64)),
            transitions: spec.and_then(|s| s.lease_transitions).unwrap_or(0),
            resource_version: lease.metadata.resource_version.clone(),
        }
    }

    /// Time since the last renewal by this machine's clock (`None` if never renewed or in
    /// the future).
    pub fn renewed_ago(&self, now: Timestamp) -> Option<Duration> {
        self.renewed
            .and_then(|r| Duration::try_from(now.duration_since(r)).ok())
    }

    /// Expired by this machine's clock: not renewed for longer than its duration.
    pub fn expired_by_clock(&self, now: Timestamp) -> bool {
        self.expires_in(now).is_none()
    }

    /// How much longer, by the clock `now`, the lease holds without another renewal: `None`
    /// once it has expired (not renewed for longer than its duration, allowing
    /// [`CLOCK_SLACK`] for the clocks' resolution). A renewal "in the future" (the holder's
    /// clock ahead) counts as just now.
    pub fn expires_in(&self, now: Timestamp) -> Option<Duration> {
        let (Some(r), Some(d)) = (self.renewed.or(self.acquired), self.duration) else {
            // No renewal time or no duration: nothing says it is alive.
            return None;
        };
        let ago = Duration::try_from(now.duration_since(r)).unwrap_or(Duration::ZERO);
        (d + CLOCK_SLACK).checked_sub(ago).filter(|left| !left.is_zero())
    }
}

/// What happens to a lease of `duration` left behind by a run that is gone, as the messages
/// say it (and as [`Lock::acquire`] does).
pub fn expiry_text(duration: Duration) -> String {
    format!(
        "it expires by itself {}s after its last renewal, and a run started after that takes it over; before that, `--force-unlock` from this host takes it over once this process has ended",
        duration.as_secs()
    )
}

/// What the clocks' resolution (the `Date` header's whole seconds) allows for.
pub const CLOCK_SLACK: Duration = Duration::from_secs(1);

/// Whether another run's lease may be taken: the judgement of [`judge`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// Nobody holds it.
    Free,
    /// Its holder is a process on this host that still runs: never taken over.
    LiveHere { pid: u32 },
    /// Its holder ran on this host and its process is gone: dead. `expires_in`: how long
    /// the lease still holds by its own times (`None`: it has expired).
    DeadHere { pid: u32, expires_in: Option<Duration> },
    /// Held from another host (or by something that is not aks-patch) and renewed within
    /// its duration: live, never taken over; it would count as dead after `expires_in`
    /// more without a renewal.
    Live {
        renewed_ago: Option<Duration>,
        expires_in: Duration,
    },
    /// Held from another host and not renewed for longer than its duration: expired (to be
    /// confirmed by watching it for one renewal period).
    Expired { renewed_ago: Option<Duration> },
}

/// Judge the lease `state` for the process `me`, with `now` the best estimate of the API
/// server's time and `alive` telling whether a pid on this host is a running aks-patch.
pub fn judge(state: &LeaseState, me: &HolderInfo, now: Timestamp, alive: impl Fn(u32) -> bool) -> Liveness {
    if state.holder.is_none() {
        return Liveness::Free;
    }
    if let Some(info) = state.holder_info.as_ref().filter(|i| i.host == me.host) {
        // Our own pid cannot be the holder's live process: it was reused after it died.
        if info.pid != me.pid && alive(info.pid) {
            return Liveness::LiveHere { pid: info.pid };
        }
        return Liveness::DeadHere {
            pid: info.pid,
            expires_in: state.expires_in(now),
        };
    }
    match state.expires_in(now) {
        Some(expires_in) => Liveness::Live {
            renewed_ago: state.renewed_ago(now),
            expires_in,
        },
        None => Liveness::Expired {
            renewed_ago: state.renewed_ago(now),
        },
    }
}

/// How long to watch a lease that looks expired before taking it: one renewal period of its
/// own duration (a live holder renews every third of it) and two seconds, and at least
/// `min`.
pub fn watch_period(state: &LeaseState, min: Duration) -> Duration {
    state
        .duration
        .map(|d| d / 3 + Duration::from_secs(2))
        .unwrap_or(min)
        .max(min)
}

/// The API server's clock against this machine's: what to add to `Timestamp::now()`, read from
/// the `Date` header of a cheap request (`/version`). `None` when it cannot be read; zero
/// when within the header's resolution.
pub async fn server_clock_offset(client: &Client) -> Option<SignedDuration> {
    let req = http::Request::get("/version")
        .body(::kube::client::Body::empty())
        .ok()?;
    let before = Timestamp::now();
    let res = tokio::time::timeout(Duration::from_secs(10), client.send(req))
        .await
        .ok()?
        .ok()?;
    let after = Timestamp::now();
    let date = res.headers().get(http::header::DATE)?.to_str().ok()?;
    let server = crate::http::http_date(date)?;
    // The header is truncated to the second: the server's time is in [server, server + 1s).
    let server = server.checked_add(SignedDuration::from_millis(500)).ok()?;
    let asked_at = before.checked_add(after.duration_since(before) / 2).ok()?;
    let offset = server.duration_since(asked_at);
    Some(if offset.abs() <= SignedDuration::from_secs(2) {
        SignedDuration::ZERO
    } else {
        offset
    })
}

/// Why a lease held by another run is not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeldVerdict {
    /// Renewed within its duration (`duration`): live; it would count as dead only after
    /// `expires_in` more without a renewal. `forced`: `--force-unlock` was given.
    Live {
        duration: Option<Duration>,
        expires_in: Duration,
        forced: bool,
    },
    /// It looked expired by the clocks but was renewed while we watched: live.
    RenewedWhileWatched { forced: bool },
    /// Its holder ran on this host and is gone; the lease expires by itself in `expires_in`.
    Dead {
        pid: u32,
        host: String,
        expires_in: Duration,
    },
    /// Another run took it as we tried.
    JustTaken,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{}", held_text(.holder, .acquired, .renewed_ago, .verdict, .lease))]
    Held {
        /// `namespace/name` of the Lease.
        lease: String,
        holder: String,
        acquired: Option<Timestamp>,
        renewed_ago: Option<Duration>,
        /// Why it is not taken.
        verdict: HeldVerdict,
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
    #[error(transparent)]
    Kube(#[from] KubeError),
}

fn held_text(
    holder: &str,
    acquired: &Option<Timestamp>,
    renewed_ago: &Option<Duration>,
    verdict: &HeldVerdict,
    lease: &str,
) -> String {
    let mut s = format!("another aks-patch run holds the lock (Lease {lease}): {holder}");
    if let Some(a) = acquired {
        s.push_str(&format!(", since {}", a.strftime("%Y-%m-%dT%H:%M:%SZ")));
    }
    match renewed_ago {
        Some(ago) => s.push_str(&format!(", last renewed {}s ago", ago.as_secs())),
        None => s.push_str(", never renewed"),
    }
    let even = |forced: bool| if forced { ", even with --force-unlock" } else { "" };
    match verdict {
        HeldVerdict::Live {
            duration,
            expires_in,
            forced,
        } => {
            let d = duration.map(|d| format!(" of {}s", d.as_secs())).unwrap_or_default();
            s.push_str(&format!(
                ": it is live (renewed within its lease duration{d}, by the lease's renewTime against the API server's clock), so it is not taken over{}; it would count as dead only if not renewed for another {}s; wait for that run to finish (if it dies, its lease expires by itself and the next run takes it)",
                even(*forced),
                expires_in.as_secs().max(1)
            ));
        }
        HeldVerdict::RenewedWhileWatched { forced } => s.push_str(&format!(
            ": by the clocks it looked expired, but it was renewed while we watched it: that run is live (the clocks disagree), so it is not taken over{}; wait for that run to finish",
            even(*forced)
        )),
        HeldVerdict::Dead {
            pid,
            host,
            expires_in,
        } => s.push_str(&format!(
            ": that run is dead (its process, pid {pid} on this host {host}, is gone), so nothing renews the lease; it expires by itself in {}s, then a plain run takes it; to take it over now and finish what that run left, run `aks-patch apply --resume --force-unlock` (or `--force-unlock` for a new run)",
            expires_in.as_secs().max(1)
        )),
        HeldVerdict::JustTaken => s.push_str(": it took the lock as we tried; wait for that run to finish"),
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
                let takeover = match Lock::judge(client, &state, &holder).await {
                    Liveness::Free => None,
                    Liveness::LiveHere { pid } => {
                        return Err(LockError::HeldByLiveProcess {
                            lease: lease_name,
                            holder: state.holder.clone().unwrap_or_default(),
                            host: holder.host.clone(),
                            pid,
                        })
                    }
                    Liveness::Live {
                        renewed_ago,
                        expires_in,
                    } => {
                        return Err(LockError::Held {
                            lease: lease_name,
                            holder: state.holder.clone().unwrap_or_default(),
                            acquired: state.acquired,
                            renewed_ago,
                            verdict: HeldVerdict::Live {
                                duration: state.duration,
                                expires_in,
                                forced: force,
                            },
                        })
                    }
                    Liveness::DeadHere {
                        pid,
                        expires_in: Some(expires_in),
                    } if !force => {
                        return Err(LockError::Held {
                            lease: lease_name,
                            holder: state.holder.clone().unwrap_or_default(),
                            acquired: state.acquired,
                            renewed_ago: state.renewed_ago(Timestamp::now()),
                            verdict: HeldVerdict::Dead {
                                pid,
                                host: holder.host.clone(),
                                expires_in,
                            },
                        })
                    }
                    Liveness::DeadHere { pid, .. } => Some(format!(
                        "its run is dead (pid {pid} on this host is gone){}",
                        if force { " (--force-unlock)" } else { "" }
                    )),
                    Liveness::Expired { renewed_ago } => {
                        let watch = watch_period(&state, opts.observe);
                        if renewed_while_watching(&api, opts, watch, &state).await? {
                            return Err(LockError::Held {
                                lease: lease_name,
                                holder: state.holder.clone().unwrap_or_default(),
                                acquired: state.acquired,
                                renewed_ago: Some(Duration::ZERO),
                                verdict: HeldVerdict::RenewedWhileWatched { forced: force },
                            });
                        }
                        Some(format!(
                            "its lease expired: {}, longer than its duration{}, and it was not renewed while watched for {}s",
                            renewed_ago
                                .map(|a| format!("last renewed {}s ago", a.as_secs()))
                                .unwrap_or_else(|| "never renewed".into()),
                            state.duration.map(|d| format!(" of {}s", d.as_secs())).unwrap_or_default(),
                            watch.as_secs()
                        ))
                    }
                };
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
                    Ok(l) => (l, state.holder.clone().zip(takeover)),
                    Err(::kube::Error::Api(s)) if s.code == 409 => {
                        return Err(held_error(&api, opts, &lease_name).await);
                    }
                    Err(e) => {
                        return Err(KubeError::api(format!("taking the lock (updating Lease {lease_name})"), e).into())
                    }
                }
            }
        };
        if let Some((p, why)) = &previous {
            tracing::info!("took over the aks-patch lock from {p}: {why}");
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

    /// [`judge`] `state` for `me`, by the API server's clock where it can be read.
    pub async fn judge(client: &Client, state: &LeaseState, me: &HolderInfo) -> Liveness {
        let mut now = Timestamp::now();
        let on_this_host = state.holder_info.as_ref().is_some_and(|i| i.host == me.host);
        if state.holder.is_some() && !on_this_host {
            match server_clock_offset(client).await {
                Some(offset) => {
                    if !offset.is_zero() {
                        tracing::info!(
                            "the API server's clock is {}s off this machine's: the lock is judged by the server's",
                            offset.as_secs()
                        );
                    }
                    now = now.checked_add(offset).unwrap_or(now);
                }
                None => tracing::debug!("cannot read the API server's clock; the lock is judged by this machine's"),
            }
        }
        judge(state, me, now, process_is_aks_patch)
    }

    /// The lease now and its judgement for `me` (`None`: nobody ever took it).
    pub async fn judge_now(
        client: &Client,
        me: &HolderInfo,
        opts: &LockOptions,
    ) -> Result<Option<(LeaseState, Liveness)>, LockError> {
        let Some(state) = Lock::inspect(client, opts).await? else {
            return Ok(None);
        };
        let l = Lock::judge(client, &state, me).await;
        Ok(Some((state, l)))
    }

    /// Whether [`Lock::acquire`] would refuse now, without changing anything and without
    /// watching a lease that looks expired: the same refusal, before anything waits on it.
    pub async fn check(
        client: &Client,
        me: &HolderInfo,
        opts: &LockOptions,
        force: bool,
    ) -> Result<Option<(LeaseState, Liveness)>, LockError> {
        let Some((state, l)) = Lock::judge_now(client, me, opts).await? else {
            return Ok(None);
        };
        let lease = format!("{}/{}", opts.namespace, opts.name);
        let holder = state.holder.clone().unwrap_or_default();
        match &l {
            Liveness::LiveHere { pid } => Err(LockError::HeldByLiveProcess {
                lease,
                holder,
                host: me.host.clone(),
                pid: *pid,
            }),
            Liveness::Live {
                renewed_ago,
                expires_in,
            } => Err(LockError::Held {
                lease,
                holder,
                acquired: state.acquired,
                renewed_ago: *renewed_ago,
                verdict: HeldVerdict::Live {
                    duration: state.duration,
                    expires_in: *expires_in,
                    forced: force,
                },
            }),
            Liveness::DeadHere {
                pid,
                expires_in: Some(expires_in),
            } if !force => Err(LockError::Held {
                lease,
                holder,
                acquired: state.acquired,
                renewed_ago: state.renewed_ago(Timestamp::now()),
                verdict: HeldVerdict::Dead {
                    pid: *pid,
                    host: me.host.clone(),
                    expires_in: *expires_in,
                },
            }),
            _ => Ok(Some((state, l))),
        }
    }
}

/// Now, as a Lease holds it: `MicroTime` carries microseconds on the wire, so the rest is
/// dropped and what is written is what is read back.
fn now_micro() -> MicroTime {
    let now = Timestamp::now();
    MicroTime(Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now))
}

fn lease_spec(identity: &str, duration: Duration, transitions: i32) -> LeaseSpec {
    let now = now_micro();
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
                renewed_ago: st.renewed_ago(Timestamp::now()),
                verdict: HeldVerdict::JustTaken,
            }
        }
        _ => LockError::Held {
            lease: lease_name.to_string(),
            holder: "(another run, just now)".into(),
            acquired: None,
            renewed_ago: None,
            verdict: HeldVerdict::JustTaken,
        },
    }
}

/// Watch a lease that looks expired for `watch`: true if it changed meanwhile.
async fn renewed_while_watching(
    api: &Api<Lease>,
    opts: &LockOptions,
    watch: Duration,
    seen: &LeaseState,
) -> Result<bool, LockError> {
    let deadline = tokio::time::Instant::now() + watch;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500).min(watch)).await;
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
                spec.renew_time = Some(now_micro());
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

/// Whether the fence may try a failed renewal again after `delay`: only while the lease we
/// last renewed `held_for` ago stays within half its `duration` (no other run can take a
/// lease before it expires, and half leaves room for clocks and the retry itself).
fn fence_may_retry(held_for: Duration, delay: Duration, duration: Duration) -> bool {
    held_for + delay < duration / 2
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
    /// Whom the lock was taken over from, and why that was allowed.
    previous_holder: Option<(String, String)>,
    lost_rx: watch::Receiver<Option<String>>,
    stop_tx: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    released: bool,
}

impl LockGuard {
    pub fn holder(&self) -> &HolderInfo {
        &self.holder
    }

    /// Whom the lock was taken over from (a dead or expired holder's).
    pub fn previous_holder(&self) -> Option<&str> {
        self.previous_holder.as_ref().map(|(h, _)| h.as_str())
    }

    /// Why the lock could be taken over from [`Self::previous_holder`].
    pub fn takeover_reason(&self) -> Option<&str> {
        self.previous_holder.as_ref().map(|(_, why)| why.as_str())
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
        // A renewal that fails for a transient reason (a reset connection, a 503) is tried
        // again with the rollout's one retry policy, but only while the lease we last
        // renewed is still well within its duration: the lock is provably ours until then.
        let what = format!("renewing the lock (Lease {lease})");
        let mut backoff = Backoff::new(RetryPolicy::default());
        loop {
            match self.renewer.renew_once().await {
                Renewal::Renewed => return Ok(()),
                Renewal::Lost(reason) => return Err(LockError::Lost { lease, reason }),
                Renewal::Failed(why) => {
                    let held_for = self.renewer.last_ok().await.elapsed();
                    match backoff.after(&what, true, &why) {
                        Some(delay) if fence_may_retry(held_for, delay, self.opts.duration) => {
                            tokio::time::sleep(delay).await
                        }
                        _ => return Err(LockError::Unconfirmed { lease, reason: why }),
                    }
                }
            }
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
                "the aks-patch lock (Lease {}) was not released; {}",
                self.lease(),
                expiry_text(self.opts.duration)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fence_retries_a_failed_renewal_only_while_the_lease_is_surely_still_ours() {
        let d = Duration::from_secs(60);
        assert!(fence_may_retry(Duration::from_secs(5), Duration::from_secs(1), d));
        assert!(fence_may_retry(Duration::from_secs(28), Duration::from_secs(1), d));
        assert!(!fence_may_retry(Duration::from_secs(29), Duration::from_secs(1), d));
        assert!(!fence_may_retry(Duration::from_secs(45), Duration::from_millis(250), d));
    }

    #[test]
    fn lease_expiry_by_clock() {
        let now = Timestamp::now();
        let st = |renewed_ago: i64, dur: u64| LeaseState {
            holder: Some("x".into()),
            holder_info: None,
            acquired: None,
            renewed: Some(now - SignedDuration::from_secs(renewed_ago)),
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

    fn lease(host: &str, pid: u32, renewed_ago: i64, duration: u64, now: Timestamp) -> LeaseState {
        LeaseState {
            holder: Some(format!("alice@{host} pid {pid} run r1")),
            holder_info: Some(HolderInfo {
                user: "alice".into(),
                host: host.into(),
                pid,
                run_id: "r1".into(),
            }),
            acquired: Some(now - SignedDuration::from_secs(renewed_ago + 100)),
            renewed: Some(now - SignedDuration::from_secs(renewed_ago)),
            duration: Some(Duration::from_secs(duration)),
            transitions: 0,
            resource_version: Some("7".into()),
        }
    }

    fn me() -> HolderInfo {
        HolderInfo {
            user: "bob".into(),
            host: "jumpbox".into(),
            pid: 1000,
            run_id: "r2".into(),
        }
    }

    #[test]
    fn a_lease_renewed_within_its_duration_on_another_host_is_live_and_refused_even_with_force() {
        let now = Timestamp::now();
        // The other host's process cannot be seen from here: whatever /proc says, only the
        // lease's times count.
        let l = judge(&lease("otherhost", 1234, 3, 60, now), &me(), now, |_| false);
        assert_eq!(
            l,
            Liveness::Live {
                renewed_ago: Some(Duration::from_secs(3)),
                expires_in: Duration::from_secs(58)
            }
        );
        // Renewed 59 s ago of 60: still live.
        assert!(matches!(
            judge(&lease("otherhost", 1234, 59, 60, now), &me(), now, |_| false),
            Liveness::Live { .. }
        ));
        // Renewed "in the future" (the holder's clock ahead): live for a whole duration.
        assert!(matches!(
            judge(&lease("otherhost", 1234, -30, 60, now), &me(), now, |_| false),
            Liveness::Live { expires_in, .. } if expires_in >= Duration::from_secs(60)
        ));
        let e = LockError::Held {
            lease: "kube-system/aks-patch".into(),
            holder: "alice@otherhost pid 1234 run r1".into(),
            acquired: None,
            renewed_ago: Some(Duration::from_secs(3)),
            verdict: HeldVerdict::Live {
                duration: Some(Duration::from_secs(60)),
                expires_in: Duration::from_secs(57),
                forced: true,
            },
        }
        .to_string();
        for want in [
            "alice@otherhost pid 1234 run r1",
            "last renewed 3s ago",
            "it is live",
            "not taken over, even with --force-unlock",
            "for another 57s",
            "wait for that run to finish",
        ] {
            assert!(e.contains(want), "{want:?} in {e}");
        }
    }

    #[test]
    fn an_expired_lease_from_another_host_is_takeable() {
        let now = Timestamp::now();
        assert_eq!(
            judge(&lease("otherhost", 1234, 70, 60, now), &me(), now, |_| true),
            Liveness::Expired {
                renewed_ago: Some(Duration::from_secs(70))
            }
        );
        // No renewal time or no duration: nothing says it is alive.
        let mut l = lease("otherhost", 1234, 3, 60, now);
        l.duration = None;
        assert!(matches!(judge(&l, &me(), now, |_| true), Liveness::Expired { .. }));
        // Released: free.
        let mut l = lease("otherhost", 1234, 3, 60, now);
        l.holder = None;
        assert_eq!(judge(&l, &me(), now, |_| true), Liveness::Free);
        // Watched for one of its renewal periods, and two seconds.
        assert_eq!(
            watch_period(&lease("otherhost", 1, 70, 60, now), Duration::from_secs(5)),
            Duration::from_secs(22)
        );
        assert_eq!(
            watch_period(&lease("otherhost", 1, 70, 3, now), Duration::from_secs(5)),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn a_holder_on_this_host_is_live_while_its_process_runs_and_dead_once_gone() {
        let now = Timestamp::now();
        let fresh = lease("jumpbox", 1234, 3, 60, now);
        assert_eq!(
            judge(&fresh, &me(), now, |pid| pid == 1234),
            Liveness::LiveHere { pid: 1234 }
        );
        // A fresh lease, but its process is gone: dead, not "live; wait".
        assert_eq!(
            judge(&fresh, &me(), now, |_| false),
            Liveness::DeadHere {
                pid: 1234,
                expires_in: Some(Duration::from_secs(58))
            }
        );
        // Expired too.
        assert_eq!(
            judge(&lease("jumpbox", 1234, 90, 60, now), &me(), now, |_| false),
            Liveness::DeadHere {
                pid: 1234,
                expires_in: None
            }
        );
        // Its pid is now ours: it was reused after the holder died.
        assert_eq!(
            judge(&lease("jumpbox", 1000, 3, 60, now), &me(), now, |_| true),
            Liveness::DeadHere {
                pid: 1000,
                expires_in: Some(Duration::from_secs(58))
            }
        );
        let e = LockError::Held {
            lease: "kube-system/aks-patch".into(),
            holder: "alice@jumpbox pid 1234 run r1".into(),
            acquired: None,
            renewed_ago: Some(Duration::from_secs(3)),
            verdict: HeldVerdict::Dead {
                pid: 1234,
                host: "jumpbox".into(),
                expires_in: Duration::from_secs(57),
            },
        }
        .to_string();
        for want in [
            "that run is dead",
            "pid 1234 on this host jumpbox",
            "expires by itself in 57s",
            "aks-patch apply --resume --force-unlock",
        ] {
            assert!(e.contains(want), "{want:?} in {e}");
        }
        assert!(!e.contains("live"), "{e}");
    }

    #[test]
    fn the_expiry_message_names_the_lease_duration_and_who_takes_it() {
        let t = expiry_text(Duration::from_secs(60));
        assert!(t.contains("60s after its last renewal"), "{t}");
        assert!(t.contains("a run started after that takes it over"), "{t}");
        // What it promises is what the judgement does: 61 s after the last renewal of a 60 s
        // lease, a run from anywhere may take it.
        let now = Timestamp::now();
        assert!(matches!(
            judge(&lease("otherhost", 1, 62, 60, now), &me(), now, |_| true),
            Liveness::Expired { .. }
        ));
        assert!(matches!(
            judge(&lease("jumpbox", 1, 62, 60, now), &me(), now, |_| false),
            Liveness::DeadHere { expires_in: None, .. }
        ));
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
