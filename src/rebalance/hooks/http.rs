//! The generic HTTP hook: one request at drain and one at rejoin, URL and body from templates.
//! A 2xx answer is success; anything else fails the step with the start of the answer.

use std::collections::BTreeMap;

use super::settings::HttpHookSettings;
use super::{http_client, snippet, BoxFuture, Hook, HookContext, HookError};

pub struct Http {
    name: String,
    method: reqwest::Method,
    drain_url: String,
    rejoin_url: String,
    body: String,
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
        Ok(Http {
            name: s.name.clone(),
            method,
            drain_url: s.drain_url.clone(),
            rejoin_url: s.rejoin_url.clone(),
            body: s.body.clone(),
            headers: s.headers.clone(),
            client: http_client(s.timeout_seconds, None)?,
        })
    }

    async fn call(&self, url: &str, ctx: &HookContext, step: &str) -> Result<(), HookError> {
        if url.is_empty() {
            return Ok(());
        }
        let url = ctx.render(url, &ctx.vm_name, true)?;
        let parsed = url::Url::parse(&url).map_err(|e| {
            HookError(format!(
                "http hook {:?} ({step}): {url:?} is not a URL: {e}",
                self.name
            ))
        })?;
        let mut req = self.client.request(self.method.clone(), parsed.clone());
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), ctx.render(v, &ctx.vm_name, false)?);
        }
        if !self.body.is_empty() {
            req = req.body(ctx.render(&self.body, &ctx.vm_name, false)?);
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
