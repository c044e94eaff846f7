//! Changes made by other hosts on the same database, applied here: a webhook, a user's
//! companies or a connector is read again from storage and put in place in memory, within a
//! second of its change.

use crate::store::{Change, Store};

use super::{ConnectorService, Webhooks};

/// Applies other hosts' changes made after `cursor` (taken before what they change was
/// loaded) until the task is dropped.
pub async fn follow(store: Store, webhooks: Webhooks, connectors: ConnectorService, mut cursor: u64) {
    loop {
        match store.changes_since(cursor).await {
            Ok((changes, next)) => {
                cursor = next;
                for change in changes {
                    if let Err(error) = apply(&store, &webhooks, &connectors, &change).await {
                        tracing::error!(?change, "cannot apply a change made by another host: {error}");
                    }
                }
            }
            Err(error) => tracing::error!("cannot read changes made by other hosts: {error}"),
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), store.wait_for_changes()).await;
    }
}

async fn apply(
    store: &Store,
    webhooks: &Webhooks,
    connectors: &ConnectorService,
    change: &Change,
) -> Result<(), Box<dyn std::error::Error>> {
    match change {
        Change::Webhook(id) => match store.webhook(id).await? {
            Some(webhook) => webhooks.reloaded(&webhook),
            None => webhooks.forget(id),
        },
        Change::User(id) => {
            if let Some(user) = store.user(id).await? {
                webhooks.companies_changed(&user);
            }
        }
        Change::Connector(name) => connectors.refresh(name).await?,
    }
    Ok(())
}
