//! The reboot lifecycle. Every 100 ms [`run`] reads what the shims left in each node's
//! `/var/lib/aks-sim/requests` (apt events, reboot requests) and moves rebooting machines
//! along their timeline:
//!
//! reboot request -> `reboot` event, SSH closed and every node process killed (`ssh-down`)
//! -> after `timing.shutdownSeconds` the kubelet stops (not on a fast reboot): its Lease is
//! no longer renewed, and the node lifecycle controller turns the Node Unknown once the
//! Lease is `timing.nodeMonitorGraceSeconds` old (see [`super::kubelet`])
//! -> after `timing.bootSeconds` (or the slow-reboot fault's; never with node-never-returns)
//! boot: new bootID, newest installed kernel, reboot marker gone, Node NotReady (not on a fast
//! reboot), `node-booted`, SSH back (`ssh-up`, unless the ssh-down fault is set)
//! -> after `timing.readySeconds` the Node is Ready again.

use super::{chroot, power_off, Machine, MachineState, NodeRuntime, Phase};
use crate::events::kinds;
use crate::model::{self, Readiness};
use crate::time::{secs, unix_now};
use crate::Shared;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most a node may append between two polls that is read at once.
const MAX_READ: u64 = 256 * 1024;

/// Drive the machines until the emulator stops.
pub async fn run(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut liveness = super::kubelet::Liveness::default();
    let mut turn = 0usize;
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        let Some(rt) = shared.node_runtime.get() else { continue };
        let now = Instant::now();
        // Reading every node's requests file every tick is 50,000 stat calls a second on
        // 5,000 nodes: a big cluster reads them in turns (a round every n/2500 s), while
        // machines in the middle of a reboot move on every tick.
        let machines = rt.machines();
        let rounds = machines.len().div_ceil(250).max(1);
        turn = (turn + 1) % rounds;
        for (i, m) in machines.iter().enumerate() {
            if i % rounds == turn || m.lock().phase != super::Phase::Running || m.lock().reboot_at.is_some() {
                step(&shared, rt, m, now);
            }
        }
        super::kubelet::tick(&shared, rt, &mut liveness, now);
    }
}

/// New complete lines in the node's requests file: (kind, detail).
fn read_requests(root: &Path, offset: &mut u64) -> Vec<(String, String)> {
    let path = root.join("var/lib/aks-sim/requests");
    let Ok(md) = std::fs::symlink_metadata(&path) else {
        return vec![];
    };
    if !md.is_file() {
        return vec![];
    }
    let len = md.len();
    if len < *offset {
        *offset = 0; // truncated or replaced
    }
    if len == *offset {
        return vec![];
    }
    let Ok(mut f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
    else {
        return vec![];
    };
    if f.seek(SeekFrom::Start(*offset)).is_err() {
        return vec![];
    }
    let mut buf = Vec::new();
    if f.take((len - *offset).min(MAX_READ)).read_to_end(&mut buf).is_err() {
        return vec![];
    }
    let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
        if buf.len() as u64 >= MAX_READ {
            *offset += buf.len() as u64; // a line longer than we read: skip it
        }
        return vec![];
    };
    *offset += end as u64 + 1;
    String::from_utf8_lossy(&buf[..end])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.split_once('\t') {
            Some((k, d)) => (k.trim().to_string(), d.trim().to_string()),
            None => (l.trim().to_string(), String::new()),
        })
        .collect()
}

fn step(shared: &Shared, rt: &NodeRuntime, m: &Arc<Machine>, now: Instant) {
    let Some(root) = &m.root else { return };
    let mut st = m.lock();
    let mut offset = st.requests_offset;
    let requests = read_requests(root, &mut offset);
    st.requests_offset = offset;
    for (kind, detail) in requests {
        match kind.as_str() {
            "apt-update" => shared.events.record(kinds::APT_UPDATE, Some(&m.name), None, detail),
            "apt-upgrade" => shared.events.record(kinds::APT_UPGRADE, Some(&m.name), None, detail),
            "apt-failed" => shared.events.record(kinds::APT_FAILED, Some(&m.name), None, detail),
            "reboot" if st.phase == Phase::Running => begin_reboot(shared, rt, m, &mut st, &detail, now),
            "reboot-at" if st.phase == Phase::Running => {
                let (at, how) = detail.split_once(' ').unwrap_or((detail.as_str(), "shutdown -r"));
                if let Ok(at) = at.parse::<i64>() {
                    let wait = (at - unix_now()).max(0) as u64;
                    st.reboot_at = Some((now + Duration::from_secs(wait), how.to_string()));
                }
            }
            "reboot-cancel" => st.reboot_at = None,
            "reboot" | "reboot-at" => {} // already going down
            other => tracing::debug!("node {}: unknown request `{other}`", m.name),
        }
    }
    if let Some((at, how)) = st.reboot_at.clone() {
        if now >= at && st.phase == Phase::Running {
            begin_reboot(shared, rt, m, &mut st, &how, now);
        }
    }
    advance(shared, rt, m, &mut st, now);
}

fn begin_reboot(shared: &Shared, rt: &NodeRuntime, m: &Arc<Machine>, st: &mut MachineState, how: &str, now: Instant) {
    let timing = &shared.scenario.timing;
    shared.events.record(
        kinds::REBOOT,
        Some(&m.name),
        None,
        format!("bootID={} command={how}", st.boot_id),
    );
    if rt.close_ssh(st) {
        shared.events.record(kinds::SSH_DOWN, Some(&m.name), None, "reboot");
    }
    shared.faults.end_ssh_hang(&m.name);
    power_off(m, st);
    st.phase = Phase::ShuttingDown;
    st.reboot_at = None;
    st.fast = timing.fast_reboot;
    st.kubelet_stop_at = (!timing.fast_reboot).then(|| now + secs(timing.shutdown_seconds));
    st.boot_at = if shared.faults.node_never_returns(&m.name) {
        None
    } else {
        let boot = shared.faults.slow_reboot(&m.name).unwrap_or(timing.boot_seconds);
        Some(now + secs(boot))
    };
    st.ready_at = None;
}

fn advance(shared: &Shared, rt: &NodeRuntime, m: &Arc<Machine>, st: &mut MachineState, now: Instant) {
    let timing = &shared.scenario.timing;
    if let Some(at) = st.kubelet_stop_at {
        if now >= at && matches!(st.phase, Phase::ShuttingDown | Phase::Down) {
            // The kubelet is gone: no more Lease renewals or status (kubelet.rs takes it on).
            st.kubelet_stop_at = None;
            st.phase = Phase::Down;
        }
    }
    if matches!(st.phase, Phase::ShuttingDown | Phase::Down) {
        let never = shared.faults.node_never_returns(&m.name);
        match st.boot_at {
            // The node-never-returns fault was cleared: it boots now, as a repaired VM would.
            None if !never => st.boot_at = Some(now + secs(timing.boot_seconds)),
            Some(at) if now >= at => {
                if never {
                    st.boot_at = None;
                } else {
                    boot(shared, rt, m, st, now);
                }
            }
            _ => {}
        }
    }
    if st.phase == Phase::Booting && st.ready_at.is_some_and(|at| now >= at) {
        st.ready_at = None;
        st.phase = Phase::Running;
        if let Err(e) = model::set_readiness(&shared.store, &m.name, Readiness::Ready) {
            tracing::warn!("node {}: cannot mark the Node Ready: {e}", m.name);
        }
    }
}

fn boot(shared: &Shared, rt: &NodeRuntime, m: &Arc<Machine>, st: &mut MachineState, now: Instant) {
    let Some(root) = &m.root else { return };
    let Some(spec) = shared.node(&m.name) else { return };
    let kernel = chroot::installed_kernels(root)
        .pop()
        .unwrap_or_else(|| st.kernel.clone());
    let boot_id = model::new_boot_id();
    for f in ["run/reboot-required", "run/reboot-required.pkgs", "run/aks-sim-restart"] {
        let _ = std::fs::remove_file(root.join(f));
    }
    if let Err(e) = chroot::write_boot_files(root, spec, &kernel, &boot_id, unix_now()) {
        tracing::warn!("node {}: cannot write its boot files: {e:#}", m.name);
    }
    st.kernel = kernel.clone();
    st.boot_id = boot_id.clone();
    st.kubelet_stop_at = None;
    st.boot_at = None;
    // A fast reboot keeps its Ready condition; a real one comes back NotReady until the kubelet
    // is ready, in the same status update as the new bootID.
    let readiness = (!st.fast).then_some(Readiness::NotReady);
    if let Err(e) = model::set_boot(&shared.store, &m.name, &boot_id, &kernel, readiness) {
        tracing::warn!("node {}: cannot record the boot on the Node: {e}", m.name);
    }
    shared.events.record(
        kinds::NODE_BOOTED,
        Some(&m.name),
        None,
        format!("bootID={boot_id} kernel={kernel}"),
    );
    // What the kubelet says when it starts on a new boot.
    let node_ref = crate::recorder::ObjectRef::kubelet_node(&m.name);
    let src = crate::recorder::kubelet(&m.name);
    crate::recorder::record(shared, &node_ref, src, "Normal", "Starting", "Starting kubelet.");
    crate::recorder::record(
        shared,
        &node_ref,
        src,
        "Warning",
        "Rebooted",
        &format!("Node {} has been rebooted, boot id: {boot_id}", m.name),
    );
    st.phase = Phase::Booting;
    st.ready_at = Some(now + secs(shared.scenario.timing.ready_seconds));
    if !shared.faults.ssh_down(&m.name) {
        match rt.open_ssh(m, st) {
            Ok(true) => shared.events.record(kinds::SSH_UP, Some(&m.name), None, "boot"),
            Ok(false) => {}
            Err(e) => tracing::warn!("node {}: cannot listen for SSH after boot: {e:#}", m.name),
        }
    }
}
