//! aks-patch: keep the Linux nodes of AKS clusters patched.
//!
//! The binary is thin glue (`src/main.rs`); this library holds the parts, so that tests
//! and the generated completions and man page see the same definitions.

pub mod azure;
pub mod cli;
pub mod commands;
pub mod duration;
pub mod fleet;
pub mod http;
pub mod kube;
pub mod metrics;
pub mod node;
pub mod notify;
pub mod output;
pub mod retry;
pub mod rollout;
pub mod settings;
pub mod ssh;
pub mod transport;
