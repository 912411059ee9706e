//! The rollout: which nodes in which order ([`plan`]), what will certainly fail
//! ([`preflight`]), the health gate ([`gate`]), the engine that moves each node through its
//! states ([`engine`]) behind small traits ([`ports`], real ones in [`live`]; what it tells
//! through [`progress`]), how a run stops ([`stop`]), resuming ([`resume`]), the run record
//! ([`journal`]) and the after-report ([`after`]).

pub mod after;
pub mod blockers;
pub mod engine;
pub mod gate;
pub mod journal;
pub mod live;
pub mod plan;
pub mod ports;
pub mod preflight;
pub mod progress;
pub mod proof;
pub mod resume;
pub mod shell;
pub mod stop;
pub mod window;
