//! `wasmhook migrate`: the PostgreSQL schema, and moving a sled deployment into PostgreSQL.

use std::path::{Path, PathBuf};

use clap::Args;

use super::Failure;
use crate::store::Location;
use crate::store::transfer::{self, Progress};

#[derive(Args)]
pub struct MigrateArgs {
    /// The PostgreSQL database: postgres://user@host/db.
    #[arg(long, visible_alias = "to", value_name = "URL", env = "WASMHOOK_DATABASE", hide_env_values = true)]
    database: String,
    /// A data directory (as given to `serve --data-dir`) whose embedded database to copy into
    /// the PostgreSQL one: users, tokens, uploaded connectors, webhooks, events, deliveries
    /// with their attempts, and the queue. Stop the server using it first. Running it again
    /// copies only what is missing.
    #[arg(long, value_name = "DIR")]
    from: Option<PathBuf>,
}

/// Migrates the database; with `--from`, copies that data directory's deployment into it.
pub async fn run(args: MigrateArgs) -> Result<(), Failure> {
    let location = Location::Postgres(args.database.clone());
    if let Some(dir) = &args.from {
        return copy(dir, &location).await;
    }
    let applied = crate::store::migrate_postgres(&args.database)
        .await
        .map_err(|e| Failure(format!("cannot migrate {location}: {e}")))?;
    println!("{}", migrated(&location, &applied));
    Ok(())
}

fn migrated(location: &Location, applied: &[u64]) -> String {
    match applied {
        [] => format!("{location}: the schema is up to date"),
        applied => format!("{location}: applied migrations {applied:?}"),
    }
}

/// Copies the deployment in the data directory `dir` into the database `to` (migrated first).
async fn copy(dir: &Path, to: &Location) -> Result<(), Failure> {
    let from = Location::Sled(dir.join("db"));
    if !dir.join("db").is_dir() {
        return Err(Failure(format!(
            "{} holds no embedded database ({from} is missing): --from takes the data \
             directory, as given to `wasmhook serve --data-dir`",
            dir.display()
        )));
    }
    transfer::copy(&from, to, |progress| match progress {
        Progress::Ready { migrations } => {
            println!("{}", migrated(to, &migrations));
            println!("copying {from} into {to}");
        }
        Progress::Copied(copied) => println!(
            "  {:<14} {} copied, {} already there",
            format!("{}:", copied.kind),
            copied.written,
            copied.skipped()
        ),
    })
    .await
    .map_err(|e| Failure(format!("cannot copy {from} into {to}: {e}")))?;
    println!(
        "done; not copied: idempotency keys. Every host on {to} must be configured with the same \
         secret key — the base64 text of {} as `secret-key = \"…\"` in its config file — and the \
         same operator tokens (`operator-tokens`; the one this directory generated is in {}).",
        dir.join("secret-key").display(),
        dir.join("operator-token").display()
    );
    Ok(())
}
