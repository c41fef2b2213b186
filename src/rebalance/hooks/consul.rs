//! The Consul hook: the VM runs a Consul agent. Drain = node maintenance on through that agent
//! (`PUT /v1/agent/maintenance?enable=true&reason=...`), which takes every service of the node
//! out of discovery; rejoin = maintenance off (`enable=false`). Both are idempotent in Consul.

use super::settings::{parse_node_from, ConsulHookSettings};
use super::{http_client, read_token, snippet, BoxFuture, Hook, HookContext, HookError};

pub struct Consul {
    agent_url: String,
    reason: String,
    token: Option<String>,
    node_key: Option<String>,
    client: reqwest::Client,
}

impl Consul {
    pub fn new(s: &ConsulHookSettings) -> Result<Self, HookError> {
        let node_key = parse_node_from(&s.node_from)
            .map_err(|m| HookError(format!("rebalance.hooks.consul.node_from: {m}")))?;
        let token = s
            .token_file
            .as_deref()
            .map(|f| read_token(f, "rebalance.hooks.consul.token_file"))
            .transpose()?;
        Ok(Consul {
            agent_url: s.agent_url.clone(),
            reason: s.reason.clone(),
            token,
            node_key,
            client: http_client(s.request_timeout_seconds, None)?,
        })
    }

    async fn maintenance(&self, ctx: &HookContext, enable: bool) -> Result<(), HookError> {
        let node = ctx.node(self.node_key.as_deref())?;
        let base = ctx.render(&self.agent_url, &node, true)?;
        let mut url = url::Url::parse(base.trim_end_matches('/')).map_err(|e| {
            HookError(format!(
                "Consul agent URL {base:?} for server {} is not a URL ({e}); check \
                 rebalance.hooks.consul.agent_url",
                ctx.vm
            ))
        })?;
        url.set_path(&format!(
            "{}/v1/agent/maintenance",
            url.path().trim_end_matches('/')
        ));
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("enable", if enable { "true" } else { "false" });
            if enable {
                q.append_pair("reason", &ctx.render(&self.reason, &node, false)?);
            }
        }
        let mut req = self.client.put(url.clone());
        if let Some(t) = &self.token {
            req = req.header("X-Consul-Token", t);
        }
        let what = if enable {
            "maintenance on"
        } else {
            "maintenance off"
        };
        let resp = req.send().await.map_err(|e| {
            HookError(format!(
                "Consul agent of node {node} ({}): {what} failed: {e}; check that the agent \
                 listens there (rebalance.hooks.consul.agent_url)",
                url.origin().ascii_serialization()
            ))
        })?;
        let status = resp.status();
        if status.is_success() {
            tracing::info!(node, enable, "consul node maintenance");
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        Err(HookError(format!(
            "Consul agent of node {node}: {what} answered {status}: {}{}",
            snippet(&text),
            if status.as_u16() == 403 {
                "; the token needs node:write (rebalance.hooks.consul.token_file)"
            } else {
                ""
            }
        )))
    }
}

impl Hook for Consul {
    fn name(&self) -> &str {
        "consul"
    }

    fn drain<'a>(&'a self, ctx: &'a HookContext) -> BoxFuture<'a, Result<(), HookError>> {
        Box::pin(self.maintenance(ctx, true))
    }

    fn rejoin<'a>(&'a self, ctx: &'a HookContext) -> BoxFuture<'a, Result<(), HookError>> {
        Box::pin(self.maintenance(ctx, false))
    }
}
