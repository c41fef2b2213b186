//! The repair routes' bodies (`POST /v1/repair/plans`, `/v1/repair/runs`,
//! `/v1/repair/runs/{id}/rollback`): arbitrary bytes through the handlers' parsers.
//! A 400 is an answer; a panic or an accepted run without a selection is a finding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use steward::api::schema::{
    parse_repair_rollback, parse_repair_run_selection, parse_repair_selection,
};

fuzz_target!(|data: &[u8]| {
    let plan = parse_repair_selection(data);
    if let Ok(run) = parse_repair_run_selection(data) {
        let selected = !run.nodes.is_empty() || run.resource_class.is_some() || run.cell.is_some();
        assert!(
            selected != run.all,
            "a run accepted with no or a double selection: {run:?}"
        );
        assert!(plan.is_ok(), "a body good for a run but not for a plan");
    }
    let _ = parse_repair_rollback(data);
});
