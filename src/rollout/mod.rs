pub mod gate;
pub mod journal;
pub mod plan;
