//! Which webhooks an event reaches: an in-memory index by (event type, project), bounded by
//! the companies each webhook's owner may see *now*, then its filter.
//!
//! Every webhook sits in exactly one bucket per (event type or any) × (project, or — when it
//! names no projects — its owner's companies, or all companies). An event looks in at most
//! six buckets, so the cost of matching grows with the number of matches, not of webhooks.
//! The index is rebuilt from storage at start and updated with every change, a change of a
//! user's companies included (which re-places every webhook of theirs). The filters one
//! event meets share one work [`Budget`]; webhooks whose filter it could not pay for are left
//! out and named, so the caller can say so.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::access::{Companies, OPERATOR_ID};
use crate::domain::event::Event;
use crate::domain::payload::payload_without_webhook;
use crate::domain::webhook::Webhook;
use crate::matching::filter::{Budget, Filter, FilterError};

/// What matching needs of a webhook, kept in memory.
#[derive(Debug)]
pub struct Route {
    pub webhook_id: String,
    pub enabled: bool,
    companies: Companies,
    /// `Err` when the stored filter no longer parses (limits tighten): it then matches nothing.
    filter: Option<Result<Filter, FilterError>>,
    /// The payload's `webhook` member, for filters on `webhook.*`.
    summary: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Scope {
    Project(String),
    Company(String),
    AllCompanies,
}

type BucketKey = (Option<String>, Scope);

#[derive(Default)]
pub struct MatchIndex {
    buckets: HashMap<BucketKey, HashMap<String, Arc<Route>>>,
    keys_of: HashMap<String, Vec<BucketKey>>,
    /// Each user's companies; a user without a record sees none.
    companies: HashMap<String, Companies>,
    /// Every webhook by owner, to place them again when the owner's companies change.
    owned: HashMap<String, HashMap<String, Webhook>>,
    owner_of: HashMap<String, String>,
    disabled: std::collections::HashSet<String>,
    ordered: std::collections::HashSet<String>,
}

/// What an event reaches.
#[derive(Debug, Default)]
pub struct Matches {
    pub routes: Vec<Arc<Route>>,
    /// Webhooks left out because the event's filter budget ran out before their filter
    /// was decided.
    pub cut_off: Vec<String>,
}

/// An event as matching sees it.
pub struct Probe<'a> {
    pub event_type: &'a str,
    pub company_id: &'a str,
    pub project_id: &'a str,
    payload: Payload<'a>,
}

/// The standard payload without its `webhook` member, which filters read. Of a stored event,
/// it is built the first time a filter asks: most webhooks have no filter, and building it
/// copies the whole event.
enum Payload<'a> {
    Of(&'a Event, OnceCell<Value>),
    Given(&'a Value),
}

impl<'a> Probe<'a> {
    pub fn of(event: &'a Event) -> Self {
        Probe {
            event_type: &event.event,
            company_id: &event.company_id,
            project_id: &event.project_id,
            payload: Payload::Of(event, OnceCell::new()),
        }
    }

    /// A probe whose payload is already built (benchmarks and tests).
    pub fn with_payload(
        event_type: &'a str,
        company_id: &'a str,
        project_id: &'a str,
        payload: &'a Value,
    ) -> Self {
        Probe { event_type, company_id, project_id, payload: Payload::Given(payload) }
    }

    pub fn payload(&self) -> &Value {
        match &self.payload {
            Payload::Of(event, built) => built.get_or_init(|| payload_without_webhook(event)),
            Payload::Given(payload) => payload,
        }
    }
}

impl MatchIndex {
    /// Sets a user's companies, placing every webhook of theirs again.
    pub fn set_companies(&mut self, user_id: &str, companies: Companies) {
        self.companies.insert(user_id.to_owned(), companies);
        let webhooks: Vec<Webhook> =
            self.owned.get(user_id).map(|owned| owned.values().cloned().collect()).unwrap_or_default();
        for webhook in &webhooks {
            self.upsert(webhook);
        }
    }

    /// The companies a user may see now: every one for the operator, none for a stranger.
    pub fn companies_of(&self, user_id: &str) -> Companies {
        if user_id == OPERATOR_ID {
            return Companies::All;
        }
        self.companies.get(user_id).cloned().unwrap_or_else(|| Companies::Only(Default::default()))
    }

    /// Adds or replaces a webhook. Its filter must have been validated when it was saved.
    pub fn upsert(&mut self, webhook: &Webhook) {
        self.remove(&webhook.id);
        let owner = &webhook.created_by_id;
        self.owned.entry(owner.clone()).or_default().insert(webhook.id.clone(), webhook.clone());
        self.owner_of.insert(webhook.id.clone(), owner.clone());
        let companies = self.companies_of(owner);
        let filter = webhook.filter.as_ref().map(|f| {
            // Matching nothing rather than everything: a filter is what keeps events out.
            Filter::parse(f).inspect_err(|e| {
                tracing::warn!(
                    webhook_id = webhook.id,
                    "stored filter refused, the webhook matches nothing: {e}"
                )
            })
        });
        let route = Arc::new(Route {
            webhook_id: webhook.id.clone(),
            enabled: webhook.enabled,
            companies: companies.clone(),
            filter,
            summary: serde_json::to_value(webhook.summary()).expect("a summary is plain data"),
        });
        let events: Vec<Option<String>> = if webhook.metadata.events.is_empty() {
            vec![None]
        } else {
            webhook.metadata.events.iter().cloned().map(Some).collect()
        };
        let scopes: Vec<Scope> = match (&webhook.metadata.project_ids[..], &companies) {
            ([], Companies::All) => vec![Scope::AllCompanies],
            ([], Companies::Only(companies)) => companies.iter().cloned().map(Scope::Company).collect(),
            (projects, _) => projects.iter().cloned().map(Scope::Project).collect(),
        };
        let mut keys = Vec::new();
        for event in &events {
            for scope in &scopes {
                let key = (event.clone(), scope.clone());
                if self
                    .buckets
                    .entry(key.clone())
                    .or_default()
                    .insert(webhook.id.clone(), route.clone())
                    .is_none()
                {
                    keys.push(key);
                }
            }
        }
        self.keys_of.insert(webhook.id.clone(), keys);
        if !webhook.enabled {
            self.disabled.insert(webhook.id.clone());
        }
        if webhook.ordered {
            self.ordered.insert(webhook.id.clone());
        }
    }

    /// A webhook as matching knows it.
    pub fn webhook(&self, webhook_id: &str) -> Option<&Webhook> {
        let owner = self.owner_of.get(webhook_id)?;
        self.owned.get(owner)?.get(webhook_id)
    }

    /// Every webhook, in no particular order.
    pub fn webhooks(&self) -> impl Iterator<Item = &Webhook> {
        self.owned.values().flat_map(|owned| owned.values())
    }

    /// Whether the webhook wants its messages one at a time, in order.
    pub fn is_ordered(&self, webhook_id: &str) -> bool {
        self.ordered.contains(webhook_id)
    }

    /// Webhooks currently disabled.
    pub fn disabled(&self) -> usize {
        self.disabled.len()
    }

    pub fn remove(&mut self, webhook_id: &str) {
        if let Some(owner) = self.owner_of.remove(webhook_id)
            && let Some(owned) = self.owned.get_mut(&owner)
        {
            owned.remove(webhook_id);
            if owned.is_empty() {
                self.owned.remove(&owner);
            }
        }
        self.disabled.remove(webhook_id);
        self.ordered.remove(webhook_id);
        for key in self.keys_of.remove(webhook_id).unwrap_or_default() {
            if let Some(bucket) = self.buckets.get_mut(&key) {
                bucket.remove(webhook_id);
                if bucket.is_empty() {
                    self.buckets.remove(&key);
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.keys_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys_of.is_empty()
    }

    /// The webhooks the event reaches, enabled or not (disabled ones keep their deliveries
    /// as `paused`), in no particular order. Their filters share one [`Budget`].
    pub fn matches(&self, probe: &Probe<'_>) -> Matches {
        self.matches_within(probe, Budget::default())
    }

    fn matches_within(&self, probe: &Probe<'_>, mut budget: Budget) -> Matches {
        let event_keys = [Some(probe.event_type.to_owned()), None];
        let scopes = [
            Scope::Project(probe.project_id.to_owned()),
            Scope::Company(probe.company_id.to_owned()),
            Scope::AllCompanies,
        ];
        let mut found = Matches::default();
        for event in &event_keys {
            for scope in &scopes {
                let Some(bucket) = self.buckets.get(&(event.clone(), scope.clone())) else { continue };
                for route in bucket.values().filter(|route| route.companies.allows(probe.company_id)) {
                    let reached = match &route.filter {
                        None => true,
                        Some(Ok(filter)) => {
                            let reached = filter.matches(probe.payload(), Some(&route.summary), &mut budget);
                            // Running out lasts, so this filter ran out or found nothing left.
                            if !reached && budget.exhausted() {
                                found.cut_off.push(route.webhook_id.clone());
                            }
                            reached
                        }
                        Some(Err(_)) => false,
                    };
                    if reached {
                        found.routes.push(route.clone());
                    }
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tryout::sample_webhook;

    /// A webhook owned by a user of its own (named after it) who may see `companies`.
    fn webhook(
        index: &mut MatchIndex,
        id: &str,
        events: &[&str],
        projects: &[&str],
        companies: Companies,
    ) -> Webhook {
        let mut w = sample_webhook("TODO_CREATED", "p", None, time::OffsetDateTime::UNIX_EPOCH);
        w.id = id.into();
        w.created_by_id = format!("owner_of_{id}");
        w.metadata.events = events.iter().map(|e| e.to_string()).collect();
        w.metadata.project_ids = projects.iter().map(|p| p.to_string()).collect();
        index.set_companies(&w.created_by_id, companies);
        w
    }

    fn only(companies: &[&str]) -> Companies {
        Companies::Only(companies.iter().map(|c| c.to_string()).collect())
    }

    fn matched(index: &MatchIndex, event: &str, company: &str, project: &str) -> Vec<String> {
        let payload = json!({"event": event, "currentValue": {"title": "Launch"}});
        let probe = Probe::with_payload(event, company, project, &payload);
        let mut ids: Vec<String> =
            index.matches(&probe).routes.iter().map(|r| r.webhook_id.clone()).collect();
        ids.sort();
        ids
    }

    #[test]
    fn a_stored_event_builds_its_payload_only_for_a_filter() {
        let mut index = MatchIndex::default();
        let plain = webhook(&mut index, "plain", &[], &[], Companies::All);
        index.upsert(&plain);
        let event = crate::domain::event::IncomingEvent {
            id: Some("evt_1".into()),
            event: "TODO_CREATED".into(),
            company_id: "c1".into(),
            project_id: "p1".into(),
            user_id: None,
            current_value: Some(json!({"title": "Launch"})),
            previous_value: None,
            occurred_at: None,
        }
        .accept(time::OffsetDateTime::UNIX_EPOCH);
        let probe = Probe::of(&event);
        assert_eq!(index.matches(&probe).routes.len(), 1);
        assert!(matches!(&probe.payload, Payload::Of(_, built) if built.get().is_none()));

        for (id, title) in [("launch", "Launch"), ("other", "Other")] {
            let mut filtered = webhook(&mut index, id, &[], &[], Companies::All);
            filtered.filter = Some(json!({"path": "currentValue.title", "op": "eq", "value": title}));
            index.upsert(&filtered);
        }
        let probe = Probe::of(&event);
        let mut ids: Vec<String> =
            index.matches(&probe).routes.iter().map(|r| r.webhook_id.clone()).collect();
        ids.sort();
        assert_eq!(ids, ["launch", "plain"]);
        assert_eq!(probe.payload(), &payload_without_webhook(&event));
    }

    #[test]
    fn events_projects_and_companies_combine() {
        let mut index = MatchIndex::default();
        let w = webhook(&mut index, "a_exact", &["TODO_CREATED"], &["p1"], only(&["c1"]));
        index.upsert(&w);
        let w = webhook(&mut index, "b_any_event", &[], &["p1", "p2"], only(&["c1", "c2"]));
        index.upsert(&w);
        let w =
            webhook(&mut index, "c_company_wide", &["TODO_CREATED", "COMMENT_CREATED"], &[], only(&["c1"]));
        index.upsert(&w);
        let w = webhook(&mut index, "d_everything", &[], &[], Companies::All);
        index.upsert(&w);
        let w = webhook(&mut index, "e_other_company_project", &[], &["p9"], only(&["c1"]));
        index.upsert(&w);

        assert_eq!(
            matched(&index, "TODO_CREATED", "c1", "p1"),
            ["a_exact", "b_any_event", "c_company_wide", "d_everything"]
        );
        assert_eq!(matched(&index, "TODO_DELETED", "c1", "p1"), ["b_any_event", "d_everything"]);
        assert_eq!(matched(&index, "COMMENT_CREATED", "c2", "p2"), ["b_any_event", "d_everything"]);
        assert_eq!(matched(&index, "COMMENT_CREATED", "c1", "p3"), ["c_company_wide", "d_everything"]);
        // p9 belongs to company c3, which the owner of e may not see.
        assert_eq!(matched(&index, "TODO_CREATED", "c3", "p9"), ["d_everything"]);
    }

    #[test]
    fn filters_narrow_and_updates_and_removals_apply() {
        let mut index = MatchIndex::default();
        let mut w = webhook(&mut index, "f", &[], &[], Companies::All);
        w.filter = Some(json!({"path": "currentValue.title", "op": "eq", "value": "Other"}));
        index.upsert(&w);
        assert!(matched(&index, "TODO_CREATED", "c1", "p1").is_empty());

        w.filter = Some(json!({"path": "webhook.id", "op": "eq", "value": "f"}));
        w.metadata.events = vec!["TODO_DELETED".into()];
        index.upsert(&w);
        assert!(matched(&index, "TODO_CREATED", "c1", "p1").is_empty(), "old bucket left");
        assert_eq!(matched(&index, "TODO_DELETED", "c1", "p1"), ["f"]);

        index.remove("f");
        assert!(matched(&index, "TODO_DELETED", "c1", "p1").is_empty());
        assert!(index.is_empty() && index.buckets.is_empty() && index.owned.is_empty());
    }

    #[test]
    fn narrowing_a_user_narrows_every_webhook_of_theirs_at_once() {
        let mut index = MatchIndex::default();
        let by_project = webhook(&mut index, "by_project", &[], &["p1"], Companies::All);
        index.upsert(&by_project);
        let mut company_wide = webhook(&mut index, "company_wide", &[], &[], Companies::All);
        company_wide.created_by_id = by_project.created_by_id.clone();
        index.upsert(&company_wide);
        assert_eq!(matched(&index, "TODO_CREATED", "B", "p1"), ["by_project", "company_wide"]);

        index.set_companies(&by_project.created_by_id, only(&["A"]));
        assert!(matched(&index, "TODO_CREATED", "B", "p1").is_empty(), "company B is no longer theirs");
        assert_eq!(matched(&index, "TODO_CREATED", "A", "p1"), ["by_project", "company_wide"]);
    }

    #[test]
    fn a_user_without_a_record_sees_no_company_and_the_operator_every_one() {
        let mut index = MatchIndex::default();
        let mut stranger = webhook(&mut index, "stranger", &[], &[], Companies::All);
        stranger.created_by_id = "nobody".into();
        index.upsert(&stranger);
        let mut operators = stranger.clone();
        operators.id = "operators".into();
        operators.created_by_id = OPERATOR_ID.into();
        index.upsert(&operators);
        assert_eq!(matched(&index, "TODO_CREATED", "A", "p1"), ["operators"]);
    }

    #[test]
    fn stored_filters_that_no_longer_parse_match_nothing() {
        let mut index = MatchIndex::default();
        let mut w = webhook(&mut index, "f", &[], &[], Companies::All);
        w.filter = Some(json!({"path": "event", "op": "in", "value": vec!["TODO_CREATED"; 1_001]}));
        index.upsert(&w);
        assert!(matched(&index, "TODO_CREATED", "c1", "p1").is_empty());
    }

    #[test]
    fn filters_share_the_event_budget_and_those_cut_off_are_named() {
        let mut index = MatchIndex::default();
        let mut costly = webhook(&mut index, "costly", &[], &[], Companies::All);
        costly.filter = Some(json!({"path": "currentValue.items[*]", "op": "eq", "value": "absent"}));
        index.upsert(&costly);
        let mut cheap = webhook(&mut index, "cheap", &[], &[], Companies::All);
        cheap.filter = Some(json!({"path": "event", "op": "exists"}));
        index.upsert(&cheap);
        let unfiltered = webhook(&mut index, "unfiltered", &[], &[], Companies::All);
        index.upsert(&unfiltered);

        let payload = json!({"event": "TODO_CREATED", "currentValue": {"items": vec![0; 100]}});
        let probe = Probe::with_payload("TODO_CREATED", "c1", "p1", &payload);
        let ids = |routes: &[Arc<Route>]| {
            let mut ids: Vec<String> = routes.iter().map(|r| r.webhook_id.clone()).collect();
            ids.sort();
            ids
        };
        // Enough for both filters: the costly one takes 3 + 2 × 100 units, the cheap one 3.
        let all = index.matches_within(&probe, Budget::new(206));
        assert_eq!(ids(&all.routes), ["cheap", "unfiltered"]);
        assert!(all.cut_off.is_empty());
        // One unit short: the filter evaluated last runs out, whichever it is (bucket order).
        let short = index.matches_within(&probe, Budget::new(205));
        match &short.cut_off[..] {
            [cut] if cut == "costly" => assert_eq!(ids(&short.routes), ["cheap", "unfiltered"]),
            [cut] if cut == "cheap" => assert_eq!(ids(&short.routes), ["unfiltered"]),
            _ => panic!("{short:?}"),
        }
    }
}
