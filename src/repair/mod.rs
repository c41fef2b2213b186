//! The Ironic inventory repair: `plan` (pure: facts -> ordered steps), `facts` (gathers them
//! from Ironic, Placement and Nova's databases), `apply` (journaled, resumable), `verify` and
//! `rollback`.

pub mod plan;
