//! Host-failure recovery: `suspect` (PURE) reads the witnesses into evidence, `plan` (PURE)
//! applies the guards, cool-downs, priority and budgets, `execute` fences, forces the compute
//! service down and evacuates through Nova's scheduler, journaled and resumable, as the leader
//! the rebalancer elects. `witness` reads the optional witnesses, `cli` is `steward evacuate`.

pub mod cli;
pub mod execute;
pub mod metrics;
pub mod plan;
pub mod report;
pub mod settings;
pub mod suspect;
pub mod witness;

pub use crate::rebalance::settings::Mode;
pub use settings::*;
