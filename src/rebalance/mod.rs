//! The rebalancer: find noisy neighbours, plan moves inside their AZ, and carry them out.
//! `execute` (journaled state machine), `hooks/` (one file per orchestrator) and `leader`
//! (one replica executes) are the execution half; detection and planning join them.

pub mod execute;
pub mod hooks;
pub mod leader;
