pub mod journal;
pub mod plan;
