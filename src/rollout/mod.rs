//! The rollout: which nodes in which order ([`plan`]), what the probe of each found before
//! any change ([`probed`]), what will certainly fail ([`preflight`]) and the refusal that
//! says so ([`refusal`]), the health gate ([`gate`]), the engine that moves each node through
//! its states ([`engine`]; a node's life and its transitions: [`node_life`]) behind small
//! traits ([`ports`], real ones in [`live`]; what it tells through [`progress`]), how a run
//! stops ([`stop`]), resuming ([`resume`]), the run record ([`journal`]) and the after-report
//! ([`after`]).

pub mod after;
pub mod batches;
pub mod blockers;
pub mod engine;
pub mod gate;
pub mod journal;
pub mod live;
pub mod node_life;
pub mod plan;
pub mod ports;
pub mod preflight;
pub mod probed;
pub mod progress;
pub mod proof;
pub mod record_store;
pub mod refusal;
pub mod resume;
pub mod shell;
pub mod stop;
pub mod window;
