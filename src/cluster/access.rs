//! What steward's user may read of Nova for the cluster view, tried once (`steward config check
//! --online`): each listing the refresh makes, with the policy rule that guards it and, when
//! Nova refuses it, what to grant. An adapter's caller: it only asks [`Nova`] and sorts the
//! answers.

use crate::openstack::nova::{read_policy, Nova};
use crate::openstack::Error;

/// One read tried.
#[derive(Debug, Clone, PartialEq)]
pub struct Access {
    /// What the refresh reads (`hypervisors`, `servers of every project`, ...).
    pub read: &'static str,
    /// The Nova policy rule that guards it.
    pub policy: &'static str,
    /// `ok`, `forbidden` or `error`.
    pub result: &'static str,
    /// How many items, what to grant, or the error.
    pub detail: String,
}

impl Access {
    pub fn is_ok(&self) -> bool {
        self.result == "ok"
    }
}

fn access<T>(read: &'static str, policy: &'static str, r: Result<Vec<T>, Error>) -> Access {
    let (result, detail) = match r {
        Ok(items) => ("ok", format!("{} item(s)", items.len())),
        Err(Error::Status(s)) if s.status == 403 => (
            "forbidden",
            format!(
                "Nova's policy refuses it: grant {} to steward's user (merge \
                 etc/keystone/nova-policy.steward.yaml into Nova's policy.yaml and give the \
                 user steward_reader), or give it admin",
                read_policy(&s.url).unwrap_or(policy)
            ),
        ),
        Err(e) => ("error", e.to_string()),
    };
    Access {
        read,
        policy,
        result,
        detail,
    }
}

/// Try every read the cluster refresh makes, in its order.
pub async fn probe(nova: &Nova) -> Vec<Access> {
    vec![
        access(
            "hypervisors",
            "os_compute_api:os-hypervisors:list-detail",
            nova.hypervisors().await,
        ),
        access(
            "servers of every project",
            "os_compute_api:servers:detail:get_all_tenants",
            nova.servers().await,
        ),
        access(
            "aggregates",
            "os_compute_api:os-aggregates:index",
            nova.aggregates().await,
        ),
        access(
            "server groups of every project",
            "os_compute_api:os-server-groups:index:all_projects",
            nova.server_groups().await,
        ),
    ]
}
