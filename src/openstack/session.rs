//! One authenticated HTTP session per cloud: Keystone v3 login, token reuse and renewal, the
//! service catalog, and the headers every OpenStack call carries (token, request id, microversion).
//!
//! A token is reused until a minute before its `expires_at`, then renewed; a 401 from a service
//! renews it once and retries the call once (a token can be revoked early). Logins are serialised,
//! so many concurrent calls that find the token stale cause one login, not many.
//!
//! A 503 (a service restarting, or its load balancer with no backend) is asked again a bounded
//! number of times, after the answer's `Retry-After` (seconds, capped) or a doubling backoff: a
//! 503 means the request was not carried out, so even a write may go again. Other 5xx are
//! returned at once: a 500 or a 504 may hide a write that happened.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;
use url::Url;

use super::cloud::{
    ApplicationCredentialRef, Auth, CloudConfig, DomainRef, ProjectRef, Scope, UserRef,
};
use super::{redact_url, Error, Result, Secret, StatusError};

pub const USER_AGENT_VALUE: &str = concat!("nova-steward/", env!("CARGO_PKG_VERSION"));

/// How the session talks HTTP.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionOptions {
    /// Whole-request timeout (connect, send, read the answer).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Renew a token this long before Keystone's `expires_at`, so no call goes out with a token
    /// that expires on the way.
    pub renew_before_expiry: Duration,
    /// How many times a call answered 503 is sent again before the 503 is returned.
    pub retries_on_503: u32,
    /// The first wait before asking again after a 503 without `Retry-After` (then doubled).
    pub retry_backoff: Duration,
    /// The longest wait before one retry, whatever `Retry-After` asks.
    pub retry_max_wait: Duration,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            renew_before_expiry: Duration::from_secs(60),
            retries_on_503: 3,
            retry_backoff: Duration::from_millis(500),
            retry_max_wait: Duration::from_secs(10),
        }
    }
}

impl SessionOptions {
    /// How long to wait before retry number `attempt` (1-based) of a call answered 503:
    /// the answer's `Retry-After` in seconds when it gives one, else the doubling backoff;
    /// never longer than `retry_max_wait`. (An HTTP-date `Retry-After` counts as absent.)
    pub fn wait_after_503(&self, attempt: u32, retry_after: Option<&str>) -> Duration {
        let asked = retry_after
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let backoff = self
            .retry_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        asked.unwrap_or(backoff).min(self.retry_max_wait)
    }

    /// Defaults, with the cloud's `api_timeout` when it sets one.
    pub fn for_cloud(cloud: &CloudConfig) -> Self {
        let mut o = SessionOptions::default();
        if let Some(t) = cloud.api_timeout {
            o.timeout = t;
        }
        o
    }
}

/// The API microversion a call asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Microversion {
    /// The service name in `OpenStack-API-Version` (`compute`, `placement`).
    pub service: &'static str,
    pub version: String,
}

impl Microversion {
    pub fn compute(version: &str) -> Self {
        Microversion {
            service: "compute",
            version: version.into(),
        }
    }

    pub fn placement(version: &str) -> Self {
        Microversion {
            service: "placement",
            version: version.into(),
        }
    }

    pub fn baremetal(version: &str) -> Self {
        Microversion {
            service: "baremetal",
            version: version.into(),
        }
    }

    /// The headers that carry it. Nova also gets its legacy header, which Nova releases before
    /// the generic one (and proxies that only know the old one) read; Ironic reads only its own.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        if self.service == "baremetal" {
            return vec![("X-OpenStack-Ironic-API-Version", self.version.clone())];
        }
        let mut h = vec![(
            "OpenStack-API-Version",
            format!("{} {}", self.service, self.version),
        )];
        if self.service == "compute" {
            h.push(("X-OpenStack-Nova-API-Version", self.version.clone()));
        }
        h
    }
}

/// The service catalog of a token, as Keystone v3 returns it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Catalog {
    pub services: Vec<CatalogService>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CatalogService {
    #[serde(rename = "type")]
    pub service_type: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub endpoints: Vec<CatalogEndpoint>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CatalogEndpoint {
    pub interface: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub region_id: Option<String>,
    pub url: String,
}

impl Catalog {
    /// The URL of `service_type` at `interface`, in `region` when one is given. When no region is
    /// given and the service has several, the first is used, as keystoneauth does.
    pub fn endpoint(
        &self,
        service_type: &str,
        interface: super::Interface,
        region: Option<&str>,
    ) -> std::result::Result<String, String> {
        let found = self
            .services
            .iter()
            .filter(|s| s.service_type == service_type)
            .flat_map(|s| s.endpoints.iter())
            .filter(|e| e.interface == interface.as_str())
            .find(|e| {
                region.is_none_or(|r| {
                    e.region_id.as_deref() == Some(r) || e.region.as_deref() == Some(r)
                })
            });
        match found {
            Some(e) => Ok(e.url.clone()),
            None => Err(self.describe_missing(service_type, interface, region)),
        }
    }

    fn describe_missing(
        &self,
        service_type: &str,
        interface: super::Interface,
        region: Option<&str>,
    ) -> String {
        let wanted = match region {
            Some(r) => {
                format!("no {interface} endpoint of service type {service_type:?} in region {r:?}")
            }
            None => format!("no {interface} endpoint of service type {service_type:?}"),
        };
        if self.services.is_empty() {
            return format!(
                "{wanted}: the token has no catalog (an unscoped token? set project_name or \
                 project_id), or set {}_endpoint_override",
                service_type.replace('-', "_")
            );
        }
        let listing: BTreeSet<String> = self
            .services
            .iter()
            .map(|s| {
                let at: BTreeSet<String> = s
                    .endpoints
                    .iter()
                    .map(|e| {
                        format!(
                            "{} in {}",
                            e.interface,
                            e.region_id
                                .as_deref()
                                .or(e.region.as_deref())
                                .unwrap_or("no region")
                        )
                    })
                    .collect();
                format!(
                    "{} ({})",
                    s.service_type,
                    at.into_iter().collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        format!(
            "{wanted}; the catalog has: {}. Check region_name and interface, or set {}_endpoint_override",
            listing.into_iter().collect::<Vec<_>>().join("; "),
            service_type.replace('-', "_")
        )
    }
}

/// A token and what came with it.
#[derive(Debug)]
struct Token {
    value: Secret,
    expires_at: Option<OffsetDateTime>,
    catalog: Catalog,
}

impl Token {
    fn fresh(&self, margin: Duration) -> bool {
        match self.expires_at {
            None => true,
            Some(at) => OffsetDateTime::now_utc() + margin < at,
        }
    }
}

/// A service's answer with a success status.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The URL asked, redacted for messages.
    pub url: String,
    pub method: Method,
    pub service: String,
}

impl Reply {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        let de = &mut serde_json::Deserializer::from_slice(&self.body);
        serde_path_to_error::deserialize(de).map_err(|e| Error::Decode {
            service: self.service.clone(),
            method: self.method.to_string(),
            url: self.url.clone(),
            message: format!("at {}: {}", e.path(), e.inner()),
        })
    }

    /// The request id the service gave this call (Nova also sends `x-compute-request-id`).
    pub fn request_id(&self) -> Option<&str> {
        answered_request_id(&self.headers)
    }
}

fn answered_request_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-openstack-request-id")
        .or_else(|| headers.get("x-compute-request-id"))
        .and_then(|v| v.to_str().ok())
}

/// One cloud's authenticated session. Cheap to share behind an `Arc`.
pub struct Session {
    cloud: CloudConfig,
    options: SessionOptions,
    http: reqwest::Client,
    /// Held across a login so that concurrent callers wait for one login and share its token.
    token: tokio::sync::Mutex<Option<Arc<Token>>>,
    logins: AtomicUsize,
    /// Accounts the time each call waits on its service (a repair run's timings).
    clock: Option<Arc<crate::peerclock::PeerClock>>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("cloud", &self.cloud.name)
            .field("auth_type", &self.cloud.auth_type)
            .field("logins", &self.logins.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Build the HTTP client (CA bundle, timeouts). Does not log in: the first call does.
    pub fn new(cloud: CloudConfig, options: SessionOptions) -> Result<Session> {
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT_VALUE)
            .timeout(options.timeout)
            .connect_timeout(options.connect_timeout)
            // A redirect could carry X-Auth-Token to another host; OpenStack APIs do not redirect.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(ca) = &cloud.cacert {
            let pem = std::fs::read(ca).map_err(|e| Error::Client {
                cloud: cloud.name.clone(),
                message: format!("cannot read cacert {}: {e}", ca.display()),
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| Error::Client {
                cloud: cloud.name.clone(),
                message: format!("cacert {} holds no PEM certificate: {e}", ca.display()),
            })?;
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        if cloud.insecure {
            tracing::warn!(cloud = %cloud.name, "TLS certificates are not verified (insecure); use cacert instead");
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder.build().map_err(|e| Error::Client {
            cloud: cloud.name.clone(),
            message: e.to_string(),
        })?;
        Ok(Session {
            cloud,
            options,
            http,
            token: tokio::sync::Mutex::new(None),
            logins: AtomicUsize::new(0),
            clock: None,
        })
    }

    /// Account every call's wait (send to last byte of the answer, Keystone logins included)
    /// on `clock`, by service.
    pub fn with_clock(mut self, clock: Arc<crate::peerclock::PeerClock>) -> Self {
        self.clock = Some(clock);
        self
    }

    pub fn cloud(&self) -> &CloudConfig {
        &self.cloud
    }

    pub fn options(&self) -> &SessionOptions {
        &self.options
    }

    /// How many times this session has logged in to Keystone.
    pub fn logins(&self) -> usize {
        self.logins.load(Ordering::Relaxed)
    }

    /// The current token (logging in if needed), for a caller that must hand it to another
    /// client. It stays a [`Secret`]: it does not print.
    pub async fn auth_token(&self) -> Result<Secret> {
        Ok(self.token(None).await?.value.clone())
    }

    /// Forget the token, so the next call logs in again.
    pub async fn invalidate(&self) {
        *self.token.lock().await = None;
    }

    /// The endpoint of a service: an `<service>_endpoint_override`, else the catalog at the
    /// configured interface and region, else (static token) the cloud's `endpoint`.
    pub async fn endpoint(&self, service_type: &str) -> Result<Url> {
        let token = self.token(None).await?;
        self.endpoint_from(&token, service_type)
    }

    fn endpoint_from(&self, token: &Token, service_type: &str) -> Result<Url> {
        let fail = |message: String| Error::Endpoint {
            service_type: service_type.to_string(),
            message: format!("{}: {message}", self.cloud.describe()),
        };
        if let Some(u) = self.cloud.endpoint_override(service_type) {
            return Ok(u.clone());
        }
        let raw = match &self.cloud.auth {
            Auth::Static { endpoint, .. } => match endpoint {
                Some(e) => return Ok(e.clone()),
                None => {
                    return Err(fail(format!(
                        "a static token ({}) has no catalog; set {}_endpoint_override or endpoint",
                        self.cloud.auth_type,
                        service_type.replace('-', "_")
                    )))
                }
            },
            _ => token
                .catalog
                .endpoint(
                    service_type,
                    self.cloud.interface_for(service_type),
                    self.cloud.region_name.as_deref(),
                )
                .map_err(fail)?,
        };
        Url::parse(&raw).map_err(|e| {
            fail(format!(
                "the catalog's {service_type} URL {raw:?} is not a URL ({e})"
            ))
        })
    }

    /// A fresh token. `stale` is a token a service just refused: if it is still the current
    /// one, log in again even though it has not expired.
    async fn token(&self, stale: Option<&Arc<Token>>) -> Result<Arc<Token>> {
        let mut current = self.token.lock().await;
        if let Some(t) = current.as_ref() {
            let refused = stale.is_some_and(|s| Arc::ptr_eq(s, t));
            if !refused && t.fresh(self.options.renew_before_expiry) {
                return Ok(t.clone());
            }
        }
        let fresh = Arc::new(self.login().await?);
        *current = Some(fresh.clone());
        Ok(fresh)
    }

    async fn login(&self) -> Result<Token> {
        let Some((auth_url, body)) = login_request(&self.cloud.auth) else {
            let Auth::Static { token, .. } = &self.cloud.auth else {
                unreachable!("only a static token has no login request")
            };
            return Ok(Token {
                value: token.clone(),
                expires_at: None,
                catalog: Catalog::default(),
            });
        };
        let url = tokens_url(auth_url);
        let shown = redact_url(&url);
        let request_id = new_request_id();
        let call = Call {
            service: "identity",
            method: &Method::POST,
            url: &shown,
            token: None,
        };
        let started = Instant::now();
        let wait = crate::peerclock::wait(&self.clock, crate::peerclock::Peer::Keystone);
        let resp = self
            .http
            .post(url.clone())
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/json")
            .header("X-OpenStack-Request-ID", &request_id)
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| self.transport_error(&call, &e))?;
        let (status, headers, bytes) = self.read_answer(&call, resp).await?;
        drop(wait);
        tracing::debug!(
            cloud = %self.cloud.name, url = %shown, status, request_id = %request_id,
            answered_request_id = answered_request_id(&headers).unwrap_or("-"),
            elapsed_ms = started.elapsed().as_millis() as u64, "keystone login"
        );
        if status == 401 || status == 403 || (status == 404 && body_mentions_user(&bytes)) {
            let (_, message) = service_message(&bytes);
            let message = format!(
                "Keystone at {shown} refused the {} credentials of {} ({status}: {message}); \
                 check the user, domain, project and secret",
                self.cloud.auth_type,
                self.cloud.describe()
            );
            return Err(Error::Unauthorized {
                service: "identity".into(),
                url: shown.clone(),
                message: self.scrub(&message, None),
            });
        }
        if !(200..300).contains(&status) {
            return Err(self.status_error(&call, status, &headers, &bytes));
        }
        let (value, expires_at, catalog) = login_answer(&headers, &bytes, &shown)?;
        self.logins.fetch_add(1, Ordering::Relaxed);
        tracing::info!(cloud = %self.cloud.name, expires_at = ?expires_at, "logged in to Keystone");
        Ok(Token {
            value: Secret::new(value),
            expires_at,
            catalog,
        })
    }

    /// GET `path` (relative to the service's endpoint) with `query`, and read the JSON answer.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        service_type: &str,
        microversion: Option<&Microversion>,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T> {
        self.request(Method::GET, service_type, microversion, path, query, None)
            .await?
            .json()
    }

    /// One call to a service. Renews the token and retries once on 401; any other error status
    /// is an [`Error::Status`] with the service's own message.
    pub async fn request(
        &self,
        method: Method,
        service_type: &str,
        microversion: Option<&Microversion>,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Reply> {
        self.request_with(method, service_type, microversion, path, query, body, &[])
            .await
    }

    /// As [`Session::request`], with headers that carry secrets of their own (Keystone's
    /// `X-Subject-Token`): sent as sensitive headers and scrubbed, like the session's own token,
    /// from anything the service echoes into an error.
    #[allow(clippy::too_many_arguments)]
    pub async fn request_with(
        &self,
        method: Method,
        service_type: &str,
        microversion: Option<&Microversion>,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        secret_headers: &[(&'static str, &Secret)],
    ) -> Result<Reply> {
        let mut token = self.token(None).await?;
        let mut retried = false;
        let mut unavailable = 0u32;
        let first_sent = Instant::now();
        // A server may close a kept-alive connection just as it is reused: a read can safely
        // go again once on a fresh connection. A write might already have been applied.
        let mut resent = method != Method::GET;
        loop {
            let endpoint = self.endpoint_from(&token, service_type)?;
            let url = join(&endpoint, path, query);
            let shown = redact_url(&url);
            let req = self.build_request(
                &method,
                url.clone(),
                &token.value,
                (service_type, &shown),
                microversion,
                body,
                secret_headers,
            )?;
            let request_id = new_request_id();
            let req = req.header("X-OpenStack-Request-ID", &request_id);
            let call = Call {
                service: service_type,
                method: &method,
                url: &shown,
                token: Some(&token.value),
            };
            let started = Instant::now();
            let wait = crate::peerclock::wait(
                &self.clock,
                crate::peerclock::Peer::of_service(service_type),
            );
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) if !resent && !e.is_timeout() => {
                    tracing::info!(
                        cloud = %self.cloud.name, service = service_type, url = %shown, error = %e,
                        "a read failed before an answer; sending it again once"
                    );
                    resent = true;
                    continue;
                }
                Err(e) => return Err(self.transport_error(&call, &e)),
            };
            let (status, headers, bytes) = self.read_answer(&call, resp).await?;
            drop(wait);
            tracing::debug!(
                cloud = %self.cloud.name, service = service_type, method = %method, url = %shown,
                status, request_id = %request_id,
                answered_request_id = answered_request_id(&headers).unwrap_or("-"),
                elapsed_ms = started.elapsed().as_millis() as u64, "openstack call"
            );
            if status == 401 {
                let can_renew = !matches!(self.cloud.auth, Auth::Static { .. });
                if can_renew && !retried {
                    tracing::warn!(
                        cloud = %self.cloud.name, service = service_type, url = %shown,
                        "token refused (401); logging in again and retrying once"
                    );
                    retried = true;
                    token = self.token(Some(&token)).await?;
                    continue;
                }
                return Err(self.refused_token(
                    &method,
                    service_type,
                    &shown,
                    &bytes,
                    &token.value,
                ));
            }
            if status == 503 && unavailable < self.options.retries_on_503 {
                unavailable += 1;
                let retry_after = headers
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok());
                let wait = self.options.wait_after_503(unavailable, retry_after);
                tracing::warn!(
                    cloud = %self.cloud.name, service = service_type, method = %method,
                    url = %shown, retry = unavailable, of = self.options.retries_on_503,
                    wait_ms = wait.as_millis() as u64,
                    "service unavailable (503); asking again after a pause"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            if !(200..300).contains(&status) {
                let mut err = self.status_error(&call, status, &headers, &bytes);
                if let Error::Status(e) = &mut err {
                    scrub_and_count(&mut e.message, secret_headers, unavailable, first_sent);
                }
                return Err(err);
            }
            return Ok(Reply {
                status,
                headers,
                body: bytes.to_vec(),
                url: shown,
                method,
                service: service_type.to_string(),
            });
        }
    }

    /// One request to a service, its token and secret headers marked sensitive.
    #[allow(clippy::too_many_arguments)]
    fn build_request(
        &self,
        method: &Method,
        url: Url,
        token: &Secret,
        (service_type, shown): (&str, &str),
        microversion: Option<&Microversion>,
        body: Option<&Value>,
        secret_headers: &[(&'static str, &Secret)],
    ) -> Result<reqwest::RequestBuilder> {
        let mut req = self
            .http
            .request(method.clone(), url)
            .header(ACCEPT, "application/json");
        let mut auth = HeaderValue::from_str(token.expose()).map_err(|_| Error::Unauthorized {
            service: service_type.into(),
            url: shown.to_string(),
            message: format!(
                "the token for {} holds characters an HTTP header cannot carry; check the \
                     configured token",
                self.cloud.describe()
            ),
        })?;
        auth.set_sensitive(true);
        req = req.header("X-Auth-Token", auth);
        for (name, secret) in secret_headers {
            let mut v = HeaderValue::from_str(secret.expose()).map_err(|_| {
                Error::Argument(format!(
                    "the value of header {name} holds characters an HTTP header cannot carry"
                ))
            })?;
            v.set_sensitive(true);
            req = req.header(*name, v);
        }
        if let Some(mv) = microversion {
            for (name, value) in mv.headers() {
                req = req.header(name, value);
            }
        }
        if let Some(b) = body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        Ok(req)
    }

    /// A 401 after a fresh login, or on a static token: what the service refused and why.
    fn refused_token(
        &self,
        method: &Method,
        service_type: &str,
        shown: &str,
        bytes: &[u8],
        token: &Secret,
    ) -> Error {
        let can_renew = !matches!(self.cloud.auth, Auth::Static { .. });
        let (_, message) = service_message(bytes);
        let why = if can_renew {
            "refused a token Keystone had just issued; check the user's role assignments \
             and that the service validates tokens against the same Keystone"
        } else {
            "refused the static token; check the cloud's token"
        };
        Error::Unauthorized {
            service: service_type.into(),
            url: shown.to_string(),
            message: self.scrub(
                &format!(
                    "{method} {shown} answered 401 ({message}): {service_type} {why} ({})",
                    self.cloud.describe()
                ),
                Some(token),
            ),
        }
    }

    fn status_error(
        &self,
        call: &Call<'_>,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Error {
        let (code, message) = service_message(body);
        Error::Status(Box::new(StatusError {
            service: call.service.into(),
            method: call.method.to_string(),
            url: call.url.into(),
            status,
            code,
            message: self.scrub(&message, call.token),
            request_id: answered_request_id(headers).map(str::to_string),
        }))
    }

    /// Status, headers and body of an answer; a body cut off is a transport error.
    async fn read_answer(
        &self,
        call: &Call<'_>,
        resp: reqwest::Response,
    ) -> Result<(u16, reqwest::header::HeaderMap, bytes::Bytes)> {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| self.transport_error(call, &e))?;
        Ok((status, headers, bytes))
    }

    fn transport_error(&self, call: &Call<'_>, e: &reqwest::Error) -> Error {
        let mut message = if e.is_timeout() {
            format!("no answer within {:?}", self.options.timeout)
        } else if e.is_connect() {
            "cannot connect".to_string()
        } else {
            // without_url: our own redacted URL is already in the message.
            let mut s = String::new();
            let _ = fmt::write(&mut s, format_args!("{}", WithoutUrl(e)));
            s
        };
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        Error::Transport {
            service: call.service.into(),
            method: call.method.to_string(),
            url: call.url.into(),
            message: self.scrub(&message, call.token),
        }
    }

    /// Remove every configured secret from a text that came from outside (a service's error
    /// message, an HTTP library's error): a service that echoes a header must not leak it.
    fn scrub(&self, text: &str, token: Option<&Secret>) -> String {
        let mut out = text.to_string();
        let configured = match &self.cloud.auth {
            Auth::Password { password, .. } => password,
            Auth::ApplicationCredential { secret, .. } => secret,
            Auth::Token { token, .. } | Auth::Static { token, .. } => token,
        };
        for s in std::iter::once(configured).chain(token).map(Secret::expose) {
            if s.len() >= 4 {
                out = out.replace(s, "***");
            }
        }
        out
    }
}

/// Replace a secret (at least 4 characters, as [`Session::scrub`]) in `text` with `***`.
fn scrub_secret(text: &mut String, secret: &Secret) {
    let s = secret.expose();
    if s.len() >= 4 && text.contains(s) {
        *text = text.replace(s, "***");
    }
}

/// What a failed call was, for its error.
struct Call<'a> {
    service: &'a str,
    method: &'a Method,
    url: &'a str,
    /// The token it carried, to scrub from anything the service echoes.
    token: Option<&'a Secret>,
}

struct WithoutUrl<'a>(&'a reqwest::Error);

impl fmt::Display for WithoutUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msg = self.0.to_string();
        // reqwest appends " for url (...)"; the URL is reported, redacted, by the caller.
        match msg.find(" for url (") {
            Some(i) => f.write_str(&msg[..i]),
            None => f.write_str(&msg),
        }
    }
}

/// A service's error message with the secret headers' values taken out, and how long the
/// 503 retries lasted, if any.
fn scrub_and_count(
    message: &mut String,
    secret_headers: &[(&'static str, &Secret)],
    unavailable: u32,
    first_sent: Instant,
) {
    for (_, secret) in secret_headers {
        scrub_secret(message, secret);
    }
    if unavailable > 0 {
        message.push_str(&format!(
            " (still unavailable after {unavailable} retries over {:.1}s)",
            first_sent.elapsed().as_secs_f64()
        ));
    }
}

/// The login call for a cloud's credentials: Keystone's tokens URL and the request body;
/// `None` for a static token, which needs no login.
fn login_request(auth: &Auth) -> Option<(&Url, Value)> {
    Some(match auth {
        Auth::Static { .. } => return None,
        Auth::Password {
            auth_url,
            user,
            password,
            scope,
        } => (auth_url, password_body(user, password, scope)),
        Auth::ApplicationCredential {
            auth_url,
            credential,
            secret,
        } => (auth_url, application_credential_body(credential, secret)),
        Auth::Token {
            auth_url,
            token,
            scope,
        } => (auth_url, token_body(token, scope)),
    })
}

/// Keystone's answer to a login: the token (`X-Subject-Token`), its expiry and the catalog.
fn login_answer(
    headers: &HeaderMap,
    bytes: &[u8],
    shown: &str,
) -> Result<(String, Option<OffsetDateTime>, Catalog)> {
    let decode = |message: String| Error::Decode {
        service: "identity".into(),
        method: "POST".into(),
        url: shown.to_string(),
        message,
    };
    let Some(value) = headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    else {
        return Err(decode(
            "the answer has no X-Subject-Token header; is auth_url Keystone's v3 API?".into(),
        ));
    };
    #[derive(Deserialize)]
    struct LoginToken {
        #[serde(default)]
        expires_at: Option<String>,
        #[serde(default)]
        catalog: Catalog,
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let parsed: TokenAnswer<LoginToken> = serde_path_to_error::deserialize(de)
        .map_err(|e| decode(format!("at {}: {}", e.path(), e.inner())))?;
    let expires_at = expires_at(parsed.token.expires_at.as_deref(), "POST", shown)?;
    Ok((value.to_string(), expires_at, parsed.token.catalog))
}

/// Keystone's `{"token": {...}}` body, as a login and a token validation answer it.
#[derive(Deserialize)]
pub(crate) struct TokenAnswer<T> {
    pub token: T,
}

/// A token body's `expires_at` (RFC 3339) as a time; one Keystone cannot have sent names the call.
pub(crate) fn expires_at(
    s: Option<&str>,
    method: &str,
    url: &str,
) -> Result<Option<OffsetDateTime>> {
    let Some(s) = s else {
        return Ok(None);
    };
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(Some)
        .map_err(|e| Error::Decode {
            service: "identity".into(),
            method: method.into(),
            url: url.to_string(),
            message: format!("token.expires_at {s:?} is not an RFC 3339 time: {e}"),
        })
}

/// Keystone answers 404 for an unknown application credential or user; that is a refusal too.
fn body_mentions_user(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    text.contains("could not find user") || text.contains("application credential")
}

pub fn new_request_id() -> String {
    format!("req-{}", uuid::Uuid::new_v4())
}

/// `{auth_url}/auth/tokens`, adding `/v3` when `auth_url` is Keystone's root (as most
/// clouds.yaml files give it); no version discovery: steward speaks v3 only.
pub fn tokens_url(auth_url: &Url) -> Url {
    let path = auth_url.path().trim_end_matches('/');
    let versioned = path.ends_with("/v3") || path.contains("/v3/");
    let suffix = if versioned {
        "auth/tokens"
    } else {
        "v3/auth/tokens"
    };
    join(auth_url, suffix, &[])
}

/// The endpoint's path joined with `path` (never dropping the endpoint's last segment, as
/// `Url::join` would), then the query.
pub fn join(endpoint: &Url, path: &str, query: &[(&str, String)]) -> Url {
    let mut u = endpoint.clone();
    u.set_query(None);
    u.set_fragment(None);
    let base = u.path().trim_end_matches('/').to_string();
    let rest = path.trim_start_matches('/');
    if rest.is_empty() {
        u.set_path(if base.is_empty() { "/" } else { &base });
    } else {
        u.set_path(&format!("{base}/{rest}"));
    }
    if !query.is_empty() {
        let mut q = u.query_pairs_mut();
        for (k, v) in query {
            q.append_pair(k, v);
        }
    }
    u
}

/// The service's own error: (code, message). Knows Nova's `{"itemNotFound": {"message"}}`,
/// Keystone's `{"error": {"message"}}`, Placement's `{"errors": [{"detail", "code"}]}` and
/// Ironic's double-encoded `{"error_message": "{\"faultstring\": ...}"}`; else the body's start.
pub fn service_message(body: &[u8]) -> (Option<String>, String) {
    // Placement's details carry "\n\n" and trailing blanks; one line reads better in a log.
    fn text(v: &Value) -> Option<String> {
        v.as_str()
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|s| !s.is_empty())
    }
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if let Some(errors) = v.get("errors").and_then(Value::as_array) {
            let code = errors.iter().find_map(|e| e.get("code").and_then(text));
            let details: Vec<String> = errors
                .iter()
                .filter_map(|e| {
                    e.get("detail")
                        .and_then(text)
                        .or_else(|| e.get("title").and_then(text))
                })
                .collect();
            if !details.is_empty() {
                return (code, details.join("; "));
            }
        }
        if let Some(inner) = v.get("error_message") {
            let decoded = inner
                .as_str()
                .and_then(|s| serde_json::from_str::<Value>(s).ok())
                .unwrap_or_else(|| inner.clone());
            if let Some(m) = decoded
                .get("faultstring")
                .and_then(text)
                .or_else(|| text(&decoded))
            {
                return (None, m);
            }
        }
        if let Some(m) = v.get("message").and_then(text) {
            return (None, m);
        }
        if let Some(obj) = v.as_object() {
            for inner in obj.values() {
                if let Some(m) = inner.get("message").and_then(text) {
                    return (None, m);
                }
            }
        }
    }
    let s = String::from_utf8_lossy(body);
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let short: String = flat.chars().take(300).collect();
    if short.is_empty() {
        (None, "(empty body)".into())
    } else {
        (None, short)
    }
}

fn domain_json(d: &DomainRef) -> Value {
    match d {
        DomainRef::Id(id) => json!({ "id": id }),
        DomainRef::Name(n) => json!({ "name": n }),
    }
}

fn user_json(u: &UserRef) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    match u {
        UserRef::Id(id) => {
            m.insert("id".into(), json!(id));
        }
        UserRef::Name { name, domain } => {
            m.insert("name".into(), json!(name));
            m.insert("domain".into(), domain_json(domain));
        }
    }
    m
}

fn scope_json(scope: &Scope) -> Option<Value> {
    match scope {
        Scope::Unscoped => None,
        Scope::Project(ProjectRef::Id(id)) => Some(json!({ "project": { "id": id } })),
        Scope::Project(ProjectRef::Name { name, domain }) => {
            Some(json!({ "project": { "name": name, "domain": domain_json(domain) } }))
        }
        Scope::Domain(d) => Some(json!({ "domain": domain_json(d) })),
        Scope::System(s) if s == "all" => Some(json!({ "system": { "all": true } })),
        Scope::System(s) => Some(json!({ "system": { s.as_str(): true } })),
    }
}

fn with_scope(identity: Value, scope: &Scope) -> Value {
    let mut auth = serde_json::Map::new();
    auth.insert("identity".into(), identity);
    if let Some(s) = scope_json(scope) {
        auth.insert("scope".into(), s);
    }
    json!({ "auth": auth })
}

/// The body Keystone expects for the `password` method (keystoneauth's `v3.Password`).
pub fn password_body(user: &UserRef, password: &Secret, scope: &Scope) -> Value {
    let mut u = user_json(user);
    u.insert("password".into(), json!(password.expose()));
    with_scope(
        json!({ "methods": ["password"], "password": { "user": u } }),
        scope,
    )
}

/// The body for the `application_credential` method; no scope: the credential carries it.
pub fn application_credential_body(
    credential: &ApplicationCredentialRef,
    secret: &Secret,
) -> Value {
    let mut c = serde_json::Map::new();
    match credential {
        ApplicationCredentialRef::Id(id) => {
            c.insert("id".into(), json!(id));
        }
        ApplicationCredentialRef::Name { name, user } => {
            c.insert("name".into(), json!(name));
            c.insert("user".into(), Value::Object(user_json(user)));
        }
    }
    c.insert("secret".into(), json!(secret.expose()));
    json!({ "auth": { "identity": {
        "methods": ["application_credential"],
        "application_credential": c,
    } } })
}

/// The body for the `token` method (keystoneauth's `v3.Token`).
pub fn token_body(token: &Secret, scope: &Scope) -> Value {
    with_scope(
        json!({ "methods": ["token"], "token": { "id": token.expose() } }),
        scope,
    )
}
