//! A node, as a transport reaches it.

/// A node by name, with the address a transport connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTarget {
    pub name: String,
    /// The node's InternalIP.
    pub address: String,
}
