//! Reaching nodes over SSH: the options ([`options`]), sessions that run scripts
//! ([`session`]), and what went wrong ([`error`], with failed logins sorted out by [`login`]).
//! The scripts themselves are the node's ([`crate::node`]): every transport runs the same ones.

pub mod error;
pub mod login;
pub mod options;
pub mod session;

pub use error::SshError;
pub use options::{check_private_key, parse_jump, JumpHost, PrivateKeyError, SshFlags, SshOptions};
pub use session::{connect, NodeSession};
