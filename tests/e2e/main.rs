//! aks-patch end to end against aks-sim: the real binary (and the library's clients), real
//! ARM and Kubernetes API over HTTPS, real ssh into the emulated nodes. Each test proves its
//! point from what a user would check: the exit code, stdout, stderr, the cluster's state and
//! the emulator's event log.
//!
//! One test binary with a module per area, sharing one harness (`tests/common`). The tests
//! need root (aks-sim builds per-node chroots and runs sshd); without it they say so once
//! and are skipped.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod api_faults;
mod apply;
mod azlinux;
mod azure;
mod bad_values;
mod batch_plan;
mod batches;
mod blockers;
mod entra;
mod fleet;
mod in_cluster;
mod kube_client;
mod lock;
mod metrics;
mod notify;
mod nowhere_to_go;
mod pending_taint;
mod plan;
mod proof;
mod run_command;
mod run_record;
mod safety;
mod scan_report;
mod ssh;
mod via_kube;
mod via_run_command;
mod window;
