//! `docs/api.md` is generated from the OpenAPI document steward serves: it must be exactly
//! what the generator prints today, so a route or schema change cannot leave it behind.

use std::path::PathBuf;

const REGENERATE: &str = "cargo run --quiet -- openapi --format markdown > docs/api.md";

#[test]
fn docs_api_md_is_the_generated_reference() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/api.md");
    let doc = serde_json::to_value(steward::api::openapi::document()).expect("the document");
    let want = steward::api::openapi_markdown::render(&doc);
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have != want {
        let line = have
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || have.lines().count().min(want.lines().count()) + 1,
                |i| i + 1,
            );
        panic!(
            "docs/api.md is not the generated API reference (first difference at line {line}:\n  \
             file:      {:?}\n  generated: {:?}).\nRegenerate it with:\n  {REGENERATE}",
            have.lines().nth(line - 1).unwrap_or("<end of file>"),
            want.lines().nth(line - 1).unwrap_or("<end of document>"),
        );
    }
}

#[test]
fn the_reference_names_every_route_the_app_serves() {
    let doc = serde_json::to_value(steward::api::openapi::document()).unwrap();
    let md = steward::api::openapi_markdown::render(&doc);
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 10, "{paths:?}");
    for (path, item) in paths {
        for (method, _) in item.as_object().unwrap() {
            let heading = format!("### {} {path}\n", method.to_uppercase());
            assert!(md.contains(&heading), "no section {heading:?}");
        }
    }
    assert!(md.contains("### GET /healthz\n\nLiveness"));
    assert!(
        md.contains("Authentication: no token."),
        "healthz is marked open"
    );
    assert_eq!(
        md.matches("Authentication: no token.").count(),
        1,
        "only /healthz is open"
    );
}

#[test]
fn the_regenerate_command_prints_the_same_text_and_needs_no_config() {
    let bin = env!("CARGO_BIN_EXE_steward");
    let empty = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .args(args)
            .current_dir(empty.path())
            .env_remove("STEWARD_CONFIG")
            .output()
            .expect("run steward");
        assert!(out.status.success(), "steward {args:?}: {out:?}");
        String::from_utf8(out.stdout).expect("UTF-8")
    };
    let doc = serde_json::to_value(steward::api::openapi::document()).unwrap();
    assert_eq!(
        run(&["openapi", "--format", "markdown"]),
        steward::api::openapi_markdown::render(&doc)
    );
    let json: serde_json::Value =
        serde_json::from_str(&run(&["openapi"])).expect("steward openapi prints JSON");
    assert_eq!(json, doc, "the same document GET /openapi.json serves");
}
