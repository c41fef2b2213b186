//! The Nova callout (`POST /v1/filter`, `POST /v1/weigh`): arbitrary bytes through the
//! handlers' own parse + validate path, then the scoring core over what it accepted.
//! A 400 or 413 is an answer; a panic, an abort or a non-finite weight is a finding.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use steward::api::host_cache::HostCache;
use steward::api::schema::parse_callout;
use steward::model::ClusterView;
use steward::scoring::{self, builtin_profiles, Options, ProfileSet};

/// The handlers' default `[server] max_hosts` is far larger; a small cap keeps runs fast
/// and still reaches the "too many hosts" branch.
const MAX_HOSTS: usize = 128;
const NOW: f64 = 1_800_000_000.0;

/// Shared by every input, small so that it turns over: hosts of one input may be named by
/// reference in a later one, as the handlers' cache is.
fn cache() -> &'static HostCache {
    static CACHE: OnceLock<HostCache> = OnceLock::new();
    CACHE.get_or_init(|| HostCache::new(64))
}

fn profiles() -> &'static ProfileSet {
    static SET: OnceLock<ProfileSet> = OnceLock::new();
    SET.get_or_init(|| {
        ProfileSet::build(&builtin_profiles(), "default").expect("the built-in profiles build")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = parse_callout(data, MAX_HOSTS, Some(cache()), true) else {
        return;
    };
    let req = parsed.request;
    assert!(!req.hosts.is_empty() && req.hosts.len() <= MAX_HOSTS);
    let Ok(profile) = profiles().select(&req.instance.flavor.extra_specs, &req.instance.hints)
    else {
        return;
    };
    let view = ClusterView::default();
    let opts = Options::default();
    let (out, weights) = scoring::filter_and_weigh(&req, profile, &view, &opts, NOW);
    assert_eq!(out.rejections.len(), req.hosts.len());
    assert_eq!(weights.len(), req.hosts.len());
    let weighed = scoring::weigh(&req, profile, &view, &opts, NOW, true);
    assert_eq!(weighed.weights.len(), req.hosts.len());
    for w in weights.iter().chain(&weighed.weights) {
        // Nova's handler normalises these: a NaN or infinity would poison every host's sum.
        assert!(w.is_finite(), "weight {w} for an accepted request");
    }
    // The answer must serialise as the handler does.
    serde_json::to_vec(&out.degraded_reasons).expect("reasons serialise");
});
