//! aks-sim driven by real clients: kube-rs, kubectl, the official Python clients, reqwest,
//! azure_identity and the system `ssh` against its ARM, Kubernetes API and nodes, and the
//! `aks-sim` binary as an operator runs it.
//!
//! One test binary with a module per area, sharing one harness (`tests/common`, which
//! aks-patch's end-to-end tests use too). Most tests need root (the nodes are chroots behind
//! sshd); without it they say so once and are skipped.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod arm;
mod bastion;
mod capacity;
mod cli;
mod exec;
mod fidelity;
mod fleet;
mod kube_api;
mod kube_lists;
mod nodes;
mod pod_io;
mod runcmd;
mod service_accounts;
mod validation;
