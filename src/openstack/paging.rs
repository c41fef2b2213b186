//! The one loop of every paged OpenStack listing (Nova's servers, hypervisors and server
//! groups, Ironic's nodes): GET a page with `limit` and where it starts, hand it to the
//! listing's `next`, which says where the following page starts (a marker from a link, an
//! offset) or that the listing is done, and stop past `max_pages`. How a service pages is its
//! `next`; the request always goes to the service's own endpoint, never to a link's host.

use std::collections::HashSet;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::nova::decode_at;
use super::session::Reply;
use super::{Error, Result};

/// One page as `next` sees it.
pub(crate) struct Page<'a, T> {
    pub reply: &'a Reply,
    pub value: &'a Value,
    /// This page's items.
    pub items: &'a [T],
    /// How many items the pages before it held.
    pub before: usize,
    /// Which page it is (0 for the first).
    pub page: usize,
}

/// A client whose listings page.
pub(crate) trait Paged {
    /// GET `path` with `query` at the client's microversion.
    async fn get_page(&self, path: &str, query: &[(&str, String)]) -> Result<Reply>;
    /// Items asked per page.
    fn page_size(&self) -> u32;
    /// Pages after which a listing is stopped.
    fn max_pages(&self) -> usize;
    /// The error of a listing stopped after `max_pages`, `last_url` the last page asked.
    fn too_many_pages(&self, last_url: &str) -> Error;
}

/// Where the next page starts: what `next` answers.
pub(crate) type Start = Option<(&'static str, String)>;

/// GET a paged collection: `path` with `base`, `limit` and where the page starts (`first`,
/// then what `next` answers for each page read), until `next` answers `None` or an error, or
/// the listing passes `max_pages`.
pub(crate) async fn list_pages<T: DeserializeOwned>(
    client: &impl Paged,
    path: &str,
    base: &[(&str, String)],
    items_key: &str,
    first: Start,
    mut next: impl FnMut(&Page<'_, T>) -> Result<Start>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    let mut start = first;
    let mut last_url = path.to_string();
    for page in 0.. {
        if page >= client.max_pages() {
            return Err(client.too_many_pages(&last_url));
        }
        let mut query: Vec<(&str, String)> = base.to_vec();
        query.push(("limit", client.page_size().max(1).to_string()));
        query.extend(start.clone());
        let reply = client.get_page(path, &query).await?;
        last_url.clone_from(&reply.url);
        let value: Value = reply.json()?;
        let items: Vec<T> = decode_at(&reply, &value, items_key)?;
        let read = Page {
            reply: &reply,
            value: &value,
            items: &items,
            before: out.len(),
            page,
        };
        start = next(&read)?;
        out.extend(items);
        if start.is_none() {
            break;
        }
    }
    Ok(out)
}

/// Follows `next` links by their `marker` only (absolute or relative links alike), ending on
/// an empty page and refusing a link without a marker or a marker seen before (a service that
/// does not advance). `service` names it in the errors.
pub(crate) struct MarkerTrail {
    seen: HashSet<String>,
    service: &'static str,
}

impl MarkerTrail {
    pub fn new(service: &'static str) -> Self {
        MarkerTrail {
            seen: HashSet::new(),
            service,
        }
    }

    /// Where the page after `p` starts, given its `next` link (`None`: there is none).
    pub fn follow<T>(&mut self, p: &Page<'_, T>, next: Option<&str>, what: &str) -> Result<Start> {
        let Some(href) = next else {
            return Ok(None);
        };
        // A service sends a next link whenever a page is full; an empty page ends the listing.
        if p.items.is_empty() {
            return Ok(None);
        }
        let marker = url::Url::parse(href)
            .or_else(|_| url::Url::parse("http://relative.invalid/")?.join(href))
            .ok()
            .and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "marker")
                    .map(|(_, v)| v.into_owned())
            });
        let Some(marker) = marker else {
            return Err(Error::Paging {
                url: p.reply.url.clone(),
                message: format!("the {what} next link has no marker, so the listing cannot go on"),
            });
        };
        if !self.seen.insert(marker.clone()) {
            return Err(Error::Paging {
                url: p.reply.url.clone(),
                message: format!(
                    "marker {marker} came back twice: {} is not advancing through {what}; \
                     stopped after {} page(s)",
                    self.service,
                    p.page + 1
                ),
            });
        }
        Ok(Some(("marker", marker)))
    }
}
