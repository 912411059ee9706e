//! Everything aks-patch prints. Commands return plain serde data; this module turns it
//! into text. Data goes to stdout ([`render`], [`print_stdout`]); progress, steps,
//! warnings, logs and errors go to stderr ([`Reporter`], [`logging`], [`errors`]).

pub mod batches;
pub mod color;
pub mod errors;
pub mod fleet;
pub mod format;
pub mod logging;
pub mod nodes;
pub mod refusal;
pub mod reporter;
pub mod rollout;
pub mod table;

pub use errors::{exit_code, render_error, ErrorExt, Exit, Failure, Hinted, WithExit};
pub use format::{apply_query, color_enabled, print_stdout, render, validate_query, OutputFormat};
pub use reporter::{Reporter, Verbosity};
pub use table::{Column, TableSpec};

/// Why output could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A bad `--query`: the expression and the JMESPath parser's (or evaluator's) complaint.
    #[error("invalid --query expression `{expression}`: {reason}")]
    Query { expression: String, reason: String },
    /// The result cannot be shown as a table.
    #[error("{0}")]
    Table(String),
    /// The result could not be encoded (JSON/YAML).
    #[error("cannot encode the result: {0}")]
    Encode(String),
}
