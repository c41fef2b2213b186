//! `same_az`: keep an instance in its availability zone.
//! A request that names an AZ gets only hosts of that AZ; a move with no AZ named stays in the
//! instance's current AZ (Nova lets it cross unless the VM was pinned at boot). A host whose
//! AZ is unknown never passes an AZ-bound request. No parameters. Failure mode: when the
//! current AZ of a moving instance cannot be told (the shim sends the source host's AZ as
//! Nova's scheduler knows it, so this means neither Nova nor steward's view knows it), every
//! host is refused with a reason naming it and what to configure; `[scheduling]
//! unknown_az = "fail_open"` allows every AZ instead and marks the answer degraded.

use serde::Deserialize;

use crate::scoring::context::AzBinding;
use crate::scoring::{Context, Plugin};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {}

#[derive(Debug, Clone, PartialEq)]
pub struct SameAz;

impl SameAz {
    pub fn from_params(_: Params) -> Self {
        SameAz
    }
}

impl Plugin for SameAz {
    fn name(&self) -> &'static str {
        "same_az"
    }

    fn filter(&self, ctx: &Context, host: usize) -> Result<(), String> {
        let (want, why) = match &ctx.az {
            AzBinding::Free => return Ok(()),
            AzBinding::Unknown(why) if ctx.opts.unknown_az_fail_open => {
                ctx.note_degraded(format!(
                    "same_az: {why}; the AZ is not enforced ([scheduling] unknown_az = \"fail_open\")"
                ));
                return Ok(());
            }
            AzBinding::Unknown(why) => {
                let host = &ctx.req.hosts[host].host;
                return Err(format!(
                    "{why}, so host {host} cannot be checked against it: put the source host in \
                     an aggregate with availability_zone metadata (or let steward read Nova: \
                     [cluster] source = \"nova\"), or set [scheduling] unknown_az = \"fail_open\""
                ));
            }
            AzBinding::Requested(az) => (az, "the request names AZ"),
            AzBinding::Current(az) => (az, "the instance must stay in its AZ"),
        };
        match ctx.host_az(host) {
            Some(az) if az == want => Ok(()),
            Some(az) => Err(format!("host is in AZ {az}; {why} {want}")),
            None => Err(format!(
                "host's AZ is unknown; {why} {want} (put the host in an aggregate with availability_zone metadata)"
            )),
        }
    }
}
