//! The event catalog: every event type a webhook may subscribe to, with a description.

use std::collections::BTreeMap;

use serde::Serialize;

/// The event the host itself sends when a webhook is re-enabled; nobody subscribes to it.
pub const HEALTH_CHECK: &str = "WEBHOOK_HEALTH_CHECK";

/// The reference product's events.
const BUILTIN: &[(&str, &str)] = &[
    ("TODO_CREATED", "A record (todo) was created."),
    ("TODO_DELETED", "A record was deleted."),
    ("TODO_MOVED", "A record was moved to another list or position."),
    ("TODO_NAME_CHANGED", "A record's title changed."),
    ("TODO_DONE_STATUS_UPDATED", "A record was marked done or not done."),
    ("TODO_DUE_DATE_ADDED", "A record got a due date."),
    ("TODO_DUE_DATE_UPDATED", "A record's due date changed."),
    ("TODO_DUE_DATE_REMOVED", "A record's due date was removed."),
    ("TODO_ASSIGNEE_ADDED", "Someone was assigned to a record."),
    ("TODO_ASSIGNEE_REMOVED", "Someone was unassigned from a record."),
    ("TODO_TAG_ADDED", "A tag was added to a record."),
    ("TODO_TAG_REMOVED", "A tag was removed from a record."),
    ("TODO_CUSTOM_FIELD_UPDATED", "A custom field value of a record changed."),
    ("TODO_CHECKLIST_CREATED", "A checklist was added to a record."),
    ("TODO_CHECKLIST_NAME_CHANGED", "A checklist was renamed."),
    ("TODO_CHECKLIST_DELETED", "A checklist was deleted."),
    ("TODO_CHECKLIST_ITEM_CREATED", "A checklist item was created."),
    ("TODO_CHECKLIST_ITEM_NAME_CHANGED", "A checklist item was renamed."),
    ("TODO_CHECKLIST_ITEM_DELETED", "A checklist item was deleted."),
    ("TODO_CHECKLIST_ITEM_DUE_DATE_ADDED", "A checklist item got a due date."),
    ("TODO_CHECKLIST_ITEM_DUE_DATE_UPDATED", "A checklist item's due date changed."),
    ("TODO_CHECKLIST_ITEM_DUE_DATE_REMOVED", "A checklist item's due date was removed."),
    ("TODO_CHECKLIST_ITEM_ASSIGNEE_ADDED", "Someone was assigned to a checklist item."),
    ("TODO_CHECKLIST_ITEM_ASSIGNEE_REMOVED", "Someone was unassigned from a checklist item."),
    ("TODO_CHECKLIST_ITEM_DONE_STATUS_UPDATED", "A checklist item was marked done or not done."),
    ("TODO_LIST_CREATED", "A list was created."),
    ("TODO_LIST_DELETED", "A list was deleted."),
    ("TODO_LIST_NAME_CHANGED", "A list was renamed."),
    ("CUSTOM_FIELD_CREATED", "A custom field was created in a project."),
    ("CUSTOM_FIELD_DELETED", "A custom field was deleted."),
    ("CUSTOM_FIELD_UPDATED", "A custom field's definition changed."),
    ("TAG_CREATED", "A tag was created."),
    ("TAG_DELETED", "A tag was deleted."),
    ("TAG_UPDATED", "A tag was renamed or recoloured."),
    ("COMMENT_CREATED", "A comment was posted."),
    ("COMMENT_DELETED", "A comment was deleted."),
    ("COMMENT_UPDATED", "A comment was edited."),
];

/// The host's reports on itself: events it emits through its own pipeline, which only
/// operators subscribe to (by name: a webhook for every event does not get them).
pub const OPERATIONAL: &[(&str, &str)] = &[
    (
        WEBHOOK_DISABLED,
        "wasmhook disabled a webhook: a message used all its attempts, or the receiver or its connector said it is gone.",
    ),
    (WEBHOOK_RECOVERED, "A webhook that was disabled is enabled again and its receiver answers."),
    (DELIVERY_EXHAUSTED, "A delivery's message used all its attempts without being taken."),
    (CONNECTOR_FAILING, "A connector's invocations keep failing (over half of them in five minutes)."),
];

pub const WEBHOOK_DISABLED: &str = "WEBHOOK_DISABLED";
pub const WEBHOOK_RECOVERED: &str = "WEBHOOK_RECOVERED";
pub const DELIVERY_EXHAUSTED: &str = "DELIVERY_EXHAUSTED";
pub const CONNECTOR_FAILING: &str = "CONNECTOR_FAILING";

/// Whether `name` is one of the host's own [`OPERATIONAL`] events.
pub fn is_operational(name: &str) -> bool {
    OPERATIONAL.iter().any(|(n, _)| *n == name)
}

/// One entry of `GET /v1/event-types`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventType {
    pub name: String,
    pub description: String,
    /// The host's own report on itself: only operators subscribe to it, by name.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub operator_only: bool,
}

/// The event types webhooks may subscribe to and events may carry.
#[derive(Debug, Clone)]
pub struct Catalog {
    by_name: BTreeMap<String, String>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog::with_extra(&BTreeMap::new())
    }
}

impl Catalog {
    /// The built-in events plus an operator's own (name → description).
    pub fn with_extra(extra: &BTreeMap<String, String>) -> Self {
        let mut by_name: BTreeMap<String, String> =
            BUILTIN.iter().map(|(name, description)| (name.to_string(), description.to_string())).collect();
        by_name.extend(extra.iter().map(|(n, d)| (n.clone(), d.clone())));
        Catalog { by_name }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The events applications send, then the host's own.
    pub fn list(&self) -> Vec<EventType> {
        let sent =
            self.by_name.iter().map(|(name, description)| (name.as_str(), description.as_str(), false));
        let own = OPERATIONAL.iter().map(|(name, description)| (*name, *description, true));
        sent.chain(own)
            .map(|(name, description, operator_only)| EventType {
                name: name.to_owned(),
                description: description.to_owned(),
                operator_only,
            })
            .collect()
    }

    /// Checks subscription names — the host's own events only for an `operator`'s webhook;
    /// the error lists what is valid.
    pub fn check(&self, names: &[String], operator: bool) -> Result<(), String> {
        let own: Vec<&str> = names.iter().map(String::as_str).filter(|n| is_operational(n)).collect();
        if !operator && !own.is_empty() {
            return Err(match own.as_slice() {
                [one] => format!("{one} is the host's own report on itself: only operators subscribe to it"),
                many => format!(
                    "{} are the host's own reports on itself: only operators subscribe to them",
                    many.join(", ")
                ),
            });
        }
        let unknown: Vec<&str> =
            names.iter().map(String::as_str).filter(|n| !self.contains(n) && !is_operational(n)).collect();
        if unknown.is_empty() {
            return Ok(());
        }
        Err(format!("unknown event type(s) {}; valid: {}", unknown.join(", "), self.names()))
    }

    /// All names, comma-separated, for error messages.
    pub fn names(&self) -> String {
        self.by_name.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_catalog_has_37_events() {
        let catalog = Catalog::default();
        assert_eq!(catalog.list().iter().filter(|t| !t.operator_only).count(), 37);
        assert!(!catalog.contains(HEALTH_CHECK), "nobody subscribes to the health check");
    }

    #[test]
    fn only_operators_subscribe_to_the_hosts_own_events_and_nobody_sends_them() {
        let catalog = Catalog::default();
        assert!(catalog.check(&[WEBHOOK_DISABLED.into()], true).is_ok());
        let error = catalog.check(&[WEBHOOK_DISABLED.into(), "TODO_CREATED".into()], false).unwrap_err();
        assert!(error.starts_with("WEBHOOK_DISABLED is the host's own"), "{error}");
        assert!(!catalog.contains(WEBHOOK_DISABLED), "not an event an application may send");
        assert_eq!(catalog.list().iter().filter(|t| t.operator_only).count(), 4);
    }

    #[test]
    fn operators_can_extend_it_and_errors_list_the_valid_names() {
        let extra = BTreeMap::from([("INVOICE_PAID".to_string(), "An invoice was paid.".to_string())]);
        let catalog = Catalog::with_extra(&extra);
        assert!(catalog.contains("INVOICE_PAID"));
        let error = catalog.check(&["TODO_CREATED".into(), "NOPE".into()], false).unwrap_err();
        assert!(error.starts_with("unknown event type(s) NOPE; valid: "));
        assert!(error.contains("COMMENT_CREATED") && error.contains("INVOICE_PAID"));
    }
}
