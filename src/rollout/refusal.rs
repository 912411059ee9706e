//! A rollout that does not go on, as a value: what stands in its way, why (naming the nodes,
//! pods and flags concerned), what would let it through, and whether anything had been
//! changed when it was refused. The policies of the rollout (pre-flight, resume) build it;
//! the output layer turns it into words and an exit code. It is not an `Error`, so that no `?`
//! turns it into one that has lost its exit code and hint.

/// What stands in the rollout's way (the output layer gives each its exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Obstacle {
    /// The run cannot do what it is asked as asked: its options, its selection, drains that
    /// need a consent, a resume that contradicts its record.
    Options,
    /// A node to patch cannot be probed, or is out of service under a run that holds no lock.
    Node,
    /// Another rollout has the cluster: an aks-patch run (its lock, its node), or kured.
    OtherRollout,
    /// The identity aks-patch signs in as may not do what the rollout needs.
    Permissions,
    /// The run records cannot be read.
    Record,
}

/// Why the rollout does not go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub what: Obstacle,
    /// Why, in words: the nodes, pods, budgets and flags concerned.
    pub why: String,
    /// What would let it through.
    pub hint: Option<String>,
    /// Whether anything had been changed when the refusal took effect: a refusal before the
    /// lock changed nothing; one that holds the rest of a resumed run comes after the nodes
    /// the interrupted run left out of service were put back.
    pub changed: bool,
}

impl Refusal {
    /// A refusal with nothing changed.
    pub fn new(what: Obstacle, why: impl Into<String>) -> Refusal {
        Refusal {
            what,
            why: why.into(),
            hint: None,
            changed: false,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Refusal {
        self.hint = Some(hint.into());
        self
    }

    /// The same refusal, taking effect after changes were made.
    pub fn after_changes(mut self) -> Refusal {
        self.changed = true;
        self
    }
}
