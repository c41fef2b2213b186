//! Telemetry push (`POST /v1/telemetry`): arbitrary bytes through the handler's parse +
//! validate path, then the merge into a cluster view. A 400 is an answer; a panic, an abort
//! or an accepted sample outside its documented range is a finding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use steward::api::schema::parse_telemetry;
use steward::model::ClusterView;
use steward::telemetry;

const NOW: f64 = 1_800_000_000.0;

fn fraction_ok(v: Option<f64>) -> bool {
    v.is_none_or(|v| v.is_finite() && (0.0..=1.0).contains(&v))
}

fn non_negative_ok(v: Option<f64>) -> bool {
    v.is_none_or(|v| v.is_finite() && v >= 0.0)
}

fuzz_target!(|data: &[u8]| {
    let Ok((hosts, vms)) = parse_telemetry(data, NOW) else {
        return;
    };
    for h in &hosts {
        let f = &h.facts;
        assert!(!h.host.trim().is_empty());
        assert!(fraction_ok(f.steal) && fraction_ok(f.cpu_use), "{h:?}");
        assert!(
            non_negative_ok(f.load5) && non_negative_ok(f.vcpus),
            "{h:?}"
        );
        assert!(f.observed_at > 0.0 && f.observed_at <= NOW + 300.0, "{h:?}");
    }
    for v in &vms {
        let f = &v.facts;
        assert!(!v.uuid.trim().is_empty());
        assert!(fraction_ok(f.steal), "{v:?}");
        assert!(
            non_negative_ok(f.load5) && non_negative_ok(f.vcpus),
            "{v:?}"
        );
        assert!(f.observed_at > 0.0 && f.observed_at <= NOW + 300.0, "{v:?}");
    }
    // Twice: the second merge meets every subject already in the view.
    let mut view = ClusterView::default();
    telemetry::merge(&mut view, &hosts, &vms);
    telemetry::merge(&mut view, &hosts, &vms);
    assert!(view.hosts.len() <= hosts.len() + vms.len());
});
