//! The generic HTTP hook: one request at drain and one at rejoin, URL and body from templates.
//! A 2xx answer is success; anything else fails the step with the start of the answer.
//! Values are escaped for where they land: percent-encoded in the URL and in header values;
//! in the body by its `Content-Type` header (JSON unless a header says otherwise): JSON string
//! contents through the JSON encoder, form fields percent-encoded, any other type as they are.

use std::collections::BTreeMap;

use super::settings::HttpHookSettings;
use super::{http_client, snippet, BoxFuture, Escape, Hook, HookContext, HookError};

pub struct Http {
    name: String,
    method: reqwest::Method,
    drain_url: String,
    rejoin_url: String,
    body: String,
    body_escape: Escape,
    headers: BTreeMap<String, String>,
    client: reqwest::Client,
}

impl Http {
    pub fn new(s: &HttpHookSettings) -> Result<Self, HookError> {
        let method = reqwest::Method::from_bytes(s.method.as_bytes()).map_err(|_| {
            HookError(format!(
                "http hook {:?}: {:?} is not an HTTP method",
                s.name, s.method
            ))
        })?;
        let mut headers = s.headers.clone();
        let body_escape = body_escape(&s.name, &s.body, &mut headers)?;
        Ok(Http {
            name: s.name.clone(),
            method,
            drain_url: s.drain_url.clone(),
            rejoin_url: s.rejoin_url.clone(),
            body: s.body.clone(),
            body_escape,
            headers,
            client: http_client(s.timeout_seconds, None)?,
        })
    }

    async fn call(&self, url: &str, ctx: &HookContext, step: &str) -> Result<(), HookError> {
        if url.is_empty() {
            return Ok(());
        }
        let url = ctx.render(url, &ctx.vm_name, Escape::Percent)?;
        let parsed = url::Url::parse(&url).map_err(|e| {
            HookError(format!(
                "http hook {:?} ({step}): {url:?} is not a URL: {e}",
                self.name
            ))
        })?;
        let mut req = self.client.request(self.method.clone(), parsed.clone());
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), ctx.render(v, &ctx.vm_name, Escape::Percent)?);
        }
        if !self.body.is_empty() {
            req = req.body(ctx.render(&self.body, &ctx.vm_name, self.body_escape)?);
        }
        // Only the origin goes into messages: a hook URL may carry a secret in its query.
        let shown = format!("{}{}", parsed.origin().ascii_serialization(), parsed.path());
        let resp = req.send().await.map_err(|e| {
            HookError(format!(
                "http hook {:?} ({step}) for server {}: {} {shown} failed: {e}",
                self.name, ctx.vm, self.method
            ))
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        Err(HookError(format!(
            "http hook {:?} ({step}) for server {}: {} {shown} answered {status}: {}",
            self.name,
            ctx.vm,
            self.method,
            snippet(&text)
        )))
    }
}

/// How the body's values are escaped, from its Content-Type (added as JSON when absent). A
/// JSON body template is checked once here: filled, it must parse, and every field must sit
/// inside a JSON string.
fn body_escape(
    name: &str,
    body: &str,
    headers: &mut BTreeMap<String, String>,
) -> Result<Escape, HookError> {
    if body.is_empty() {
        return Ok(Escape::Verbatim);
    }
    let content_type = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.to_ascii_lowercase());
    let escape = match content_type.as_deref() {
        None => {
            headers.insert("Content-Type".into(), "application/json".into());
            Escape::JsonString
        }
        Some(t) if t.contains("json") => Escape::JsonString,
        Some(t) if t.starts_with("application/x-www-form-urlencoded") => Escape::Percent,
        Some(_) => Escape::Verbatim,
    };
    if escape == Escape::JsonString {
        let filled = HookContext::filled_with("x")
            .render(body, "x", escape)
            .map_err(|e| HookError(format!("http hook {name:?}: body: {e}")))?;
        serde_json::from_str::<serde_json::Value>(&filled).map_err(|e| {
            HookError(format!(
                "http hook {name:?}: the body is not JSON once filled ({e}); fix it, or set a \
                 Content-Type header saying what it is"
            ))
        })?;
    }
    Ok(escape)
}

impl Hook for Http {
    fn name(&self) -> &str {
        &self.name
    }

    fn drain<'a>(&'a self, ctx: &'a HookContext) -> BoxFuture<'a, Result<(), HookError>> {
        Box::pin(self.call(&self.drain_url, ctx, "drain"))
    }

    fn rejoin<'a>(&'a self, ctx: &'a HookContext) -> BoxFuture<'a, Result<(), HookError>> {
        Box::pin(self.call(&self.rejoin_url, ctx, "rejoin"))
    }
}
