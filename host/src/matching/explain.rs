//! Why an event reached the webhooks it did and not the others — what ingest answers with
//! `?explain=true`. It weighs every webhook the caller may know of against the same rules
//! as [`MatchIndex::matches`], one rule at a time, so it names the first rule that left a
//! webhook out. A diagnostic: it walks every webhook, unlike matching.

use serde::Serialize;
use utoipa::ToSchema;

use super::filter::{Budget, Filter};
use super::index::{MatchIndex, Probe};
use crate::access::Companies;
use crate::domain::webhook::Webhook;

/// Webhooks listed at most; the rest are counted in `more`.
const LISTED: usize = 100;

/// Why an event matched what it did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// One sentence for people.
    pub summary: String,
    /// The webhooks weighed, matched ones first (at most 100).
    pub webhooks: Vec<Verdict>,
    /// Webhooks weighed but not listed.
    pub more: usize,
}

/// One webhook's verdict.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub webhook_id: String,
    pub reason: Reason,
    /// The reason in words, with the values at play.
    pub detail: String,
}

/// The first rule that left a webhook out, or `matched`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Matched,
    /// It subscribes to other event types.
    EventType,
    /// It names projects, not this one.
    Project,
    /// The event's company is not among its owner's companies.
    Company,
    /// Its filter is false for this event.
    Filter,
    /// Its filter ran out of its work budget on this event.
    FilterBudget,
    /// Its stored filter no longer parses (limits tightened): it matches nothing.
    FilterInvalid,
}

impl Reason {
    /// How the summary counts webhooks left out for this reason.
    fn phrase(self) -> &'static str {
        match self {
            Reason::Matched => "matched",
            Reason::EventType => "subscribe to other event types",
            Reason::Project => "name other projects",
            Reason::Company => "belong to users whose companies leave this one out",
            Reason::Filter => "have a filter that is false for this event",
            Reason::FilterBudget => "have a filter that ran out of its work budget",
            Reason::FilterInvalid => "have a stored filter that no longer parses",
        }
    }
}

impl MatchIndex {
    /// Weighs every webhook whose owner's companies `visible` accepts (what the caller may
    /// know of) against `probe`.
    pub fn explain(&self, probe: &Probe<'_>, visible: impl Fn(&Companies) -> bool) -> Explanation {
        let mut verdicts: Vec<Verdict> = self
            .webhooks()
            .filter(|webhook| visible(&self.companies_of(&webhook.created_by_id)))
            .map(|webhook| self.weigh(webhook, probe))
            .collect();
        verdicts.sort_by(|a, b| (a.reason, &a.webhook_id).cmp(&(b.reason, &b.webhook_id)));
        let summary = summary(&verdicts, probe);
        let more = verdicts.len().saturating_sub(LISTED);
        verdicts.truncate(LISTED);
        Explanation { summary, webhooks: verdicts, more }
    }

    fn weigh(&self, webhook: &Webhook, probe: &Probe<'_>) -> Verdict {
        let verdict = |reason, detail: String| Verdict { webhook_id: webhook.id.clone(), reason, detail };
        let subscription = &webhook.metadata;
        if !subscription.events.is_empty() && !subscription.events.iter().any(|e| e == probe.event_type) {
            let detail =
                format!("subscribes to {}, not {}", subscription.events.join(", "), probe.event_type);
            return verdict(Reason::EventType, detail);
        }
        if !subscription.project_ids.is_empty()
            && !subscription.project_ids.iter().any(|p| p == probe.project_id)
        {
            let detail = format!(
                "its projectIds ({}) do not include {}",
                subscription.project_ids.join(", "),
                probe.project_id
            );
            return verdict(Reason::Project, detail);
        }
        let companies = self.companies_of(&webhook.created_by_id);
        if !companies.allows(probe.company_id) {
            let theirs = match &companies {
                Companies::All => "all".to_owned(),
                Companies::Only(only) if only.is_empty() => "none".to_owned(),
                Companies::Only(only) => only.iter().cloned().collect::<Vec<_>>().join(", "),
            };
            let detail = format!(
                "company {} is not among its owner's companies ({theirs}); an operator sets them with \
                 `wasmhook token create --user {} --companies …`",
                probe.company_id, webhook.created_by_id
            );
            return verdict(Reason::Company, detail);
        }
        if let Some(filter) = &webhook.filter {
            let summary = serde_json::to_value(webhook.summary()).expect("a summary is plain data");
            let mut budget = Budget::default();
            match Filter::parse(filter) {
                Err(e) => {
                    return verdict(Reason::FilterInvalid, format!("its stored filter is refused: {e}"));
                }
                Ok(filter) if !filter.matches(probe.payload(), Some(&summary), &mut budget) => {
                    return if budget.exhausted() {
                        verdict(
                            Reason::FilterBudget,
                            "its filter ran out of its work budget on this event".into(),
                        )
                    } else {
                        verdict(Reason::Filter, "its filter is false for this event".into())
                    };
                }
                Ok(_) => {}
            }
        }
        let detail = if webhook.enabled {
            "matched".to_owned()
        } else {
            "matched; it is disabled, so the delivery waits, paused, until it is enabled and recovered"
                .to_owned()
        };
        verdict(Reason::Matched, detail)
    }
}

/// "matched 1 of 3 webhooks; 2 subscribe to other event types".
fn summary(verdicts: &[Verdict], probe: &Probe<'_>) -> String {
    if verdicts.is_empty() {
        return format!(
            "no webhook to weigh: none exists that this token may know of (create one with \
             `POST /v1/webhooks` for events of company {})",
            probe.company_id
        );
    }
    let count = |reason: Reason| verdicts.iter().filter(|v| v.reason == reason).count();
    let matched = count(Reason::Matched);
    let mut text = format!("matched {matched} of {} webhook(s)", verdicts.len());
    let mut reasons: Vec<Reason> =
        verdicts.iter().map(|v| v.reason).filter(|r| *r != Reason::Matched).collect();
    reasons.dedup();
    let missed: Vec<String> = reasons.iter().map(|r| format!("{} {}", count(*r), r.phrase())).collect();
    if !missed.is_empty() {
        text.push_str("; ");
        text.push_str(&missed.join(", "));
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tryout::sample_webhook;

    /// A webhook `id` of user `owner`.
    fn webhook(id: &str, owner: &str, events: &[&str], projects: &[&str]) -> Webhook {
        let mut w = sample_webhook("TODO_CREATED", "p", None, time::OffsetDateTime::UNIX_EPOCH);
        w.id = id.into();
        w.created_by_id = owner.into();
        w.metadata.events = events.iter().map(|e| e.to_string()).collect();
        w.metadata.project_ids = projects.iter().map(|p| p.to_string()).collect();
        w
    }

    fn only(companies: &[&str]) -> Companies {
        Companies::Only(companies.iter().map(|c| c.to_string()).collect())
    }

    #[test]
    fn each_webhook_gets_the_first_rule_that_left_it_out() {
        let mut index = MatchIndex::default();
        index.set_companies("ada", only(&["company_acme"]));
        index.set_companies("bob", only(&["acme"]));
        index.upsert(&webhook("a_match", "ada", &["TODO_CREATED"], &[]));
        index.upsert(&webhook("b_other_event", "ada", &["COMMENT_CREATED"], &[]));
        index.upsert(&webhook("c_other_project", "ada", &[], &["project_other"]));
        index.upsert(&webhook("d_other_company", "bob", &[], &[]));
        let mut filtered = webhook("e_filtered", "ada", &[], &[]);
        filtered.filter = Some(json!({"path": "currentValue.done", "op": "eq", "value": true}));
        index.upsert(&filtered);
        let mut disabled = webhook("f_disabled", "ada", &[], &[]);
        disabled.enabled = false;
        index.upsert(&disabled);

        let payload = json!({"event": "TODO_CREATED", "currentValue": {"done": false}});
        let probe = Probe::with_payload("TODO_CREATED", "company_acme", "project_launch", &payload);
        let explained = index.explain(&probe, |_| true);
        let verdicts: Vec<(&str, Reason)> =
            explained.webhooks.iter().map(|v| (v.webhook_id.as_str(), v.reason)).collect();
        assert_eq!(
            verdicts,
            [
                ("a_match", Reason::Matched),
                ("f_disabled", Reason::Matched),
                ("b_other_event", Reason::EventType),
                ("c_other_project", Reason::Project),
                ("d_other_company", Reason::Company),
                ("e_filtered", Reason::Filter),
            ]
        );
        let detail = |id: &str| &explained.webhooks.iter().find(|v| v.webhook_id == id).unwrap().detail;
        assert!(
            detail("d_other_company")
                .contains("company company_acme is not among its owner's companies (acme)")
        );
        assert!(detail("f_disabled").contains("paused"));
        assert_eq!(
            explained.summary,
            "matched 2 of 6 webhook(s); 1 subscribe to other event types, 1 name other projects, 1 belong to \
             users whose companies leave this one out, 1 have a filter that is false for this event"
        );
        // The same webhooks, by the index's own rules.
        let mut matched: Vec<String> =
            index.matches(&probe).routes.iter().map(|r| r.webhook_id.clone()).collect();
        matched.sort();
        assert_eq!(matched, ["a_match", "f_disabled"]);

        // A caller sees only the webhooks of owners who share a company with it.
        let bobs = index.explain(&probe, |owner| owner.overlaps(&only(&["acme"])));
        assert_eq!(bobs.webhooks.len(), 1);
        assert_eq!(bobs.webhooks[0].webhook_id, "d_other_company");
        let nobody = index.explain(&probe, |owner| owner.overlaps(&only(&["elsewhere"])));
        assert!(nobody.webhooks.is_empty() && nobody.summary.starts_with("no webhook to weigh"));
    }
}
