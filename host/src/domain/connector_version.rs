//! Versions of uploaded connectors: every upload of a name is kept, numbered from 1. One is
//! live — what webhooks following `latest` run — the ones live before it are kept for a roll
//! back, one may shadow the live one (run beside it on real deliveries, never sent), and a
//! webhook may pin any. Retention keeps the newest few and every one in use.
//!
//! Version 0 stands for the built-in of the same name, when there is one.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::plugin_output::Request;

/// The built-in connector of a name, as a version.
pub const BUILTIN: u32 = 0;

/// Versions kept per name beyond those in use.
pub const KEPT: usize = 10;

/// Earlier live versions kept for a roll back.
pub const PREVIOUS_KEPT: usize = 5;

/// One upload of a connector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorVersion {
    /// 1 for the first upload of the name, then 2, 3…
    pub version: u32,
    /// SHA-256 of the component.
    pub hash: String,
    /// The version its `describe` gives.
    pub plugin_version: String,
    /// The contract it implements: `0.1` or `0.2`.
    pub contract: String,
    /// The component's size in bytes.
    pub size: u64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub uploaded_at: OffsetDateTime,
}

/// Which versions of a name are in which role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorHead {
    /// What webhooks following `latest` run ([`BUILTIN`] for the built-in, or for none).
    pub live: u32,
    /// The versions live before, the most recent last: where a roll back goes.
    #[serde(default)]
    pub previous: Vec<u32>,
    /// A candidate run beside the live version on real deliveries.
    #[serde(default)]
    pub shadow: Option<u32>,
}

impl ConnectorHead {
    /// Makes `version` live; the one live before is kept for a roll back.
    pub fn promote(&mut self, version: u32) {
        if self.live != version {
            self.previous.retain(|v| *v != version);
            self.previous.push(self.live);
            if self.previous.len() > PREVIOUS_KEPT {
                self.previous.remove(0);
            }
            self.live = version;
        }
        if self.shadow == Some(version) {
            self.shadow = None;
        }
    }

    /// Makes the version live before the current one live again; `None` when there is none.
    pub fn roll_back(&mut self) -> Option<u32> {
        let previous = self.previous.pop()?;
        self.live = previous;
        if self.shadow == Some(previous) {
            self.shadow = None;
        }
        Some(previous)
    }

    fn in_use(&self) -> impl Iterator<Item = u32> + '_ {
        std::iter::once(self.live).chain(self.previous.iter().copied()).chain(self.shadow)
    }
}

/// The versions retention removes: all but the newest [`KEPT`], except those live, kept for a
/// roll back, shadowing, or pinned by a webhook.
pub fn removable(versions: &[u32], head: &ConnectorHead, pinned: &BTreeSet<u32>) -> Vec<u32> {
    let mut newest_first: Vec<u32> = versions.to_vec();
    newest_first.sort_unstable_by(|a, b| b.cmp(a));
    let in_use: BTreeSet<u32> = head.in_use().chain(pinned.iter().copied()).collect();
    newest_first.into_iter().skip(KEPT).filter(|v| !in_use.contains(v)).collect()
}

/// One delivery run by both the live version and a shadowing candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShadowRun {
    /// `sr_…`, in the order they ran.
    pub id: String,
    pub connector: String,
    pub live: u32,
    pub candidate: u32,
    pub delivery_id: String,
    pub webhook_id: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// Whether the candidate asked for exactly the same requests.
    pub same: bool,
    /// How they differ, one line each (write-only config values scrubbed).
    pub differences: Vec<String>,
}

impl ShadowRun {
    pub fn new(connector: &str, (live, candidate): (u32, u32), delivery_id: &str, webhook_id: &str) -> Self {
        ShadowRun {
            id: format!("sr_{}", uuid::Uuid::now_v7().simple()),
            connector: connector.to_owned(),
            live,
            candidate,
            delivery_id: delivery_id.to_owned(),
            webhook_id: webhook_id.to_owned(),
            at: OffsetDateTime::now_utc(),
            same: true,
            differences: Vec::new(),
        }
    }
}

/// How the candidate's answer differs from the live version's, one line each; empty when
/// they are the same. Each side is the requests, or the error's text.
pub fn compare(live: &Result<Vec<Request>, String>, candidate: &Result<Vec<Request>, String>) -> Vec<String> {
    let (live, candidate) = match (live, candidate) {
        (Ok(live), Ok(candidate)) => (live, candidate),
        (Err(a), Err(b)) if a == b => return Vec::new(),
        (Err(a), Err(b)) => return vec![format!("both failed, differently: live {a:?}, candidate {b:?}")],
        (Ok(_), Err(b)) => return vec![format!("the candidate failed: {b}")],
        (Err(a), Ok(_)) => return vec![format!("the live version failed ({a}); the candidate did not")],
    };
    let mut differences = Vec::new();
    if live.len() != candidate.len() {
        differences.push(format!("{} request(s) live, {} from the candidate", live.len(), candidate.len()));
    }
    for (i, (a, b)) in live.iter().zip(candidate).enumerate() {
        if a.method != b.method {
            differences
                .push(format!("request {i}: method {} live, {} from the candidate", a.method, b.method));
        }
        if a.url != b.url {
            differences.push(format!("request {i}: url {:?} live, {:?} from the candidate", a.url, b.url));
        }
        if a.ordering_key != b.ordering_key {
            let (x, y) = (&a.ordering_key, &b.ordering_key);
            differences.push(format!("request {i}: ordering key {x:?} live, {y:?} from the candidate"));
        }
        if a.headers != b.headers {
            differences.push(format!(
                "request {i}: headers {:?} live, {:?} from the candidate",
                a.headers, b.headers
            ));
        }
        if a.body != b.body {
            let at = a
                .body
                .bytes()
                .zip(b.body.bytes())
                .position(|(x, y)| x != y)
                .unwrap_or(a.body.len().min(b.body.len()));
            differences.push(format!(
                "request {i}: bodies differ from byte {at} ({} bytes live, {} from the candidate)",
                a.body.len(),
                b.body.len()
            ));
        }
    }
    differences
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promote_keeps_the_previous_for_a_roll_back_and_clears_the_shadow() {
        let mut head = ConnectorHead { live: 1, previous: vec![], shadow: Some(2) };
        head.promote(2);
        assert_eq!(head, ConnectorHead { live: 2, previous: vec![1], shadow: None });
        head.promote(3);
        assert_eq!(head.roll_back(), Some(2));
        assert_eq!(head.roll_back(), Some(1));
        assert_eq!(head.roll_back(), None, "nothing before the first");
        assert_eq!(head.live, 1);
    }

    #[test]
    fn retention_keeps_the_newest_and_everything_in_use() {
        let versions: Vec<u32> = (1..=15).collect();
        let head = ConnectorHead { live: 15, previous: vec![2], shadow: Some(3) };
        let pinned = BTreeSet::from([1]);
        assert_eq!(removable(&versions, &head, &pinned), [5, 4]);
        assert!(removable(&versions[..10], &head, &pinned).is_empty());
    }

    fn request(body: &str, key: Option<&str>) -> Request {
        Request {
            url: None,
            method: "POST".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
            ordering_key: key.map(Into::into),
        }
    }

    #[test]
    fn differences_say_where() {
        let same = compare(&Ok(vec![request("{}", None)]), &Ok(vec![request("{}", None)]));
        assert!(same.is_empty());
        let differ =
            compare(&Ok(vec![request(r#"{"a":1}"#, None)]), &Ok(vec![request(r#"{"a":2}"#, Some("r1"))]));
        assert_eq!(differ.len(), 2, "{differ:?}");
        assert!(differ[0].contains("ordering key None live, Some(\"r1\")"), "{differ:?}");
        assert!(differ[1].contains("bodies differ from byte 5"), "{differ:?}");
        let failed = compare(&Ok(vec![]), &Err("[trap] boom".into()));
        assert_eq!(failed, ["the candidate failed: [trap] boom"]);
    }
}
