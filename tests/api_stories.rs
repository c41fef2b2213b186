//! API behaviour as stories of requests and answers (in the manner of Placement's gabbi
//! tests): each `tests/stories/*.yaml` is one test, and a failure names the story and step.
//!
//! A step: `method`, `url`, `token` (reader | telemetry | admin | none | a literal; default
//! reader), `headers`, one of `body` (YAML written as JSON), `body_file` (path from the repo
//! root) or `raw_body`; then what must hold: `status`, `response_headers` (a trailing `*`
//! matches any rest), `json` (JSON pointer -> value), `json_contains` (pointer -> substring),
//! `json_length` (pointer -> n), `greater` ([pointer, pointer] pairs), `absent` (pointers the
//! answer must not have), `body_contains`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use actix_web::test;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Story {
    #[allow(dead_code)]
    description: String,
    #[serde(default)]
    config: String,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    name: String,
    method: String,
    url: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<serde_norway::Value>,
    #[serde(default)]
    body_file: Option<String>,
    #[serde(default)]
    raw_body: Option<String>,
    status: u16,
    #[serde(default)]
    response_headers: BTreeMap<String, String>,
    #[serde(default)]
    json: BTreeMap<String, serde_norway::Value>,
    #[serde(default)]
    json_contains: BTreeMap<String, String>,
    #[serde(default)]
    json_length: BTreeMap<String, usize>,
    #[serde(default)]
    greater: Vec<[String; 2]>,
    #[serde(default)]
    absent: Vec<String>,
    #[serde(default)]
    body_contains: Vec<String>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn token_for(name: Option<&str>) -> Option<String> {
    match name.unwrap_or("reader") {
        "none" => None,
        "reader" => Some(common::app::READER.into()),
        "telemetry" => Some(common::app::TELEMETRY.into()),
        "admin" => Some(common::app::ADMIN.into()),
        literal => Some(literal.into()),
    }
}

fn yaml_to_json(v: &serde_norway::Value) -> Value {
    serde_json::to_value(v).expect("YAML value maps to JSON")
}

fn pointer<'a>(doc: &'a Value, ptr: &str) -> Result<&'a Value, String> {
    doc.pointer(ptr)
        .ok_or_else(|| format!("{ptr} is absent from the answer"))
}

fn check_step(
    step: &Step,
    status: u16,
    headers: &actix_web::http::header::HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    let text = String::from_utf8_lossy(body);
    if status != step.status {
        return Err(format!(
            "status {status}, expected {}; body: {text}",
            step.status
        ));
    }
    for (name, want) in &step.response_headers {
        let got = headers
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| format!("response header {name} is missing"))?;
        let ok = match want.strip_suffix('*') {
            Some(prefix) => got.starts_with(prefix),
            None => got == want,
        };
        if !ok {
            return Err(format!(
                "response header {name} = {got:?}, expected {want:?}"
            ));
        }
    }
    for needle in &step.body_contains {
        if !text.contains(needle.as_str()) {
            return Err(format!("body does not contain {needle:?}; body: {text}"));
        }
    }
    let needs_json = !(step.json.is_empty()
        && step.json_contains.is_empty()
        && step.json_length.is_empty()
        && step.greater.is_empty()
        && step.absent.is_empty());
    if !needs_json {
        return Ok(());
    }
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| format!("answer is not JSON ({e}): {text}"))?;
    for (ptr, want) in &step.json {
        let got = pointer(&doc, ptr)?;
        let want = yaml_to_json(want);
        let same = match (got.as_f64(), want.as_f64()) {
            (Some(a), Some(b)) => (a - b).abs() < 1e-9,
            _ => *got == want,
        };
        if !same {
            return Err(format!("{ptr} = {got}, expected {want}; answer: {doc}"));
        }
    }
    for (ptr, needle) in &step.json_contains {
        let got = pointer(&doc, ptr)?;
        let s = got
            .as_str()
            .ok_or_else(|| format!("{ptr} = {got} is not a string"))?;
        if !s.contains(needle.as_str()) {
            return Err(format!("{ptr} = {s:?} does not contain {needle:?}"));
        }
    }
    for (ptr, n) in &step.json_length {
        let got = pointer(&doc, ptr)?;
        let len = got
            .as_array()
            .map(Vec::len)
            .ok_or_else(|| format!("{ptr} is not a list: {got}"))?;
        if len != *n {
            return Err(format!("{ptr} has {len} entries, expected {n}: {got}"));
        }
    }
    for [a, b] in &step.greater {
        let (x, y) = (pointer(&doc, a)?, pointer(&doc, b)?);
        match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) if x > y => {}
            _ => return Err(format!("expected {a} ({x}) > {b} ({y})")),
        }
    }
    for ptr in &step.absent {
        if let Some(got) = doc.pointer(ptr) {
            return Err(format!("{ptr} = {got} should be absent; answer: {doc}"));
        }
    }
    Ok(())
}

fn run_story(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let story: Story =
        serde_norway::from_str(&text).map_err(|e| format!("story does not parse: {e}"))?;
    actix_web::rt::System::new().block_on(async move {
        let (_dir, state) = common::app::state(&story.config).await;
        let app = test::init_service(steward::api::app(state)).await;
        for (i, step) in story.steps.iter().enumerate() {
            let method = actix_web::http::Method::from_bytes(step.method.as_bytes())
                .map_err(|e| format!("step {} {:?}: {e}", i + 1, step.name))?;
            let mut req = test::TestRequest::default().method(method).uri(&step.url);
            if let Some(t) = token_for(step.token.as_deref()) {
                req = req.insert_header(("Authorization", format!("Bearer {t}")));
            }
            for (k, v) in &step.headers {
                req = req.insert_header((k.as_str(), v.as_str()));
            }
            let body: Option<Vec<u8>> = match (&step.body, &step.body_file, &step.raw_body) {
                (Some(b), _, _) => Some(serde_json::to_vec(&yaml_to_json(b)).unwrap()),
                (_, Some(f), _) => {
                    Some(std::fs::read(root().join(f)).map_err(|e| format!("{f}: {e}"))?)
                }
                (_, _, Some(r)) => Some(r.clone().into_bytes()),
                _ => None,
            };
            if let Some(b) = body {
                req = req
                    .insert_header(("Content-Type", "application/json"))
                    .set_payload(b);
            }
            let resp = test::call_service(&app, req.to_request()).await;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let bytes = test::read_body(resp).await;
            check_step(step, status, &headers, &bytes).map_err(|e| {
                format!(
                    "step {} {:?} ({} {}): {e}",
                    i + 1,
                    step.name,
                    step.method,
                    step.url
                )
            })?;
        }
        Ok(())
    })
}

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/stories"))
        .expect("tests/stories exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let trials = files
        .into_iter()
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            libtest_mimic::Trial::test(name, move || run_story(&path).map_err(Into::into))
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
