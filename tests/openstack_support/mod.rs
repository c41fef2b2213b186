//! Shared by the `openstack_*` tests: recorded fixtures served by wiremock, and clouds that point
//! at the mock. One mock plays Keystone (`/v3`), Nova (`/v2.1`) and Placement (`/`) at once.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use steward::openstack::cloud::{resolve, ConfigText};
use steward::openstack::{CloudConfig, Session, SessionOptions};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

pub const USERNAME: &str = "steward";
pub const PASSWORD: &str = "pa55-W0rd-never-printed";
pub const APP_CRED_ID: &str = "9044f281eea0424698b775321184669a";
pub const APP_CRED_SECRET: &str = "app-cred-secret-never-printed";
pub const TOKEN_1: &str = "gAAAAABtoken-one-never-printed";
pub const TOKEN_2: &str = "gAAAAABtoken-two-never-printed";

/// The text of `tests/fixtures/openstack/<name>.json`.
pub fn fixture_text(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openstack")
        .join(format!("{name}.json"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

/// A fixture with the recorded servers' addresses (`{{keystone}}`, `{{nova}}`, `{{placement}}`)
/// replaced by the mock's.
pub fn fixture(name: &str, base: &str) -> Value {
    let text = fixture_text(name)
        .replace("{{keystone}}", base)
        .replace("{{nova}}", base)
        .replace("{{placement}}", base);
    serde_json::from_str(&text).unwrap()
}

/// Keystone's recorded password-login answer, expiring `expires_in` from now.
pub fn token_body(base: &str, expires_in: Duration) -> Value {
    let mut body = fixture("keystone-token-password-project-scoped", base);
    let at = time::OffsetDateTime::now_utc() + expires_in;
    let text = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    body["token"]["expires_at"] = Value::String(text);
    body
}

pub fn token_reply(base: &str, token: &str, expires_in: Duration) -> ResponseTemplate {
    ResponseTemplate::new(201)
        .insert_header("X-Subject-Token", token)
        .insert_header(
            "x-openstack-request-id",
            "req-9ce48a2a-5a59-4c78-aa6f-9b563b9757ae",
        )
        .set_body_json(token_body(base, expires_in))
}

/// Keystone that issues `tokens` in turn (the last one from then on), each valid for an hour.
pub async fn mount_keystone(server: &MockServer, tokens: &[&str]) {
    mount_keystone_expiring(server, tokens, Duration::from_secs(3600)).await
}

pub async fn mount_keystone_expiring(server: &MockServer, tokens: &[&str], expires_in: Duration) {
    let base = server.uri();
    for (i, t) in tokens.iter().enumerate() {
        let mut m = Mock::given(method("POST"))
            .and(path("/v3/auth/tokens"))
            .respond_with(token_reply(&base, t, expires_in));
        if i + 1 < tokens.len() {
            m = m.up_to_n_times(1);
        }
        // Earlier tokens first: wiremock prefers the lower priority number.
        m.with_priority((i + 1) as u8).mount(server).await;
    }
}

/// clouds.yaml for a password cloud at the mock, the password in secure.yaml.
pub fn clouds_yaml(base: &str) -> String {
    format!(
        "clouds:\n  steward:\n    auth:\n      auth_url: {base}/v3\n      username: {USERNAME}\n      \
         project_name: admin\n      user_domain_name: Default\n      project_domain_name: Default\n    \
         region_name: RegionOne\n    interface: public\n    identity_api_version: 3\n  \
         steward-appcred:\n    auth_type: v3applicationcredential\n    auth:\n      auth_url: {base}/v3\n      \
         application_credential_id: {APP_CRED_ID}\n    region_name: RegionOne\n"
    )
}

pub fn secure_yaml() -> String {
    format!(
        "clouds:\n  steward:\n    auth:\n      password: {PASSWORD}\n  steward-appcred:\n    auth:\n      \
         application_credential_secret: {APP_CRED_SECRET}\n"
    )
}

pub fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Cloud `name` of [`clouds_yaml`] + [`secure_yaml`] with `vars` set.
pub fn cloud(base: &str, name: &str, vars: &[(&str, &str)]) -> CloudConfig {
    let clouds = ConfigText::new("/etc/openstack/clouds.yaml", clouds_yaml(base));
    let secure = ConfigText::new("/etc/openstack/secure.yaml", secure_yaml());
    resolve(Some(name), &env(vars), Some(&clouds), Some(&secure)).unwrap()
}

pub fn session(cloud: CloudConfig) -> Arc<Session> {
    session_with(cloud, SessionOptions::default())
}

pub fn session_with(cloud: CloudConfig, options: SessionOptions) -> Arc<Session> {
    Arc::new(Session::new(cloud, options).unwrap())
}

/// The requests the mock received at `p`.
pub async fn requests_to(server: &MockServer, p: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == p)
        .collect()
}

pub fn header<'a>(r: &'a Request, name: &str) -> Option<&'a str> {
    r.headers.get(name).and_then(|v| v.to_str().ok())
}

pub fn json(r: &Request) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}
