//! `wasmhook connector list|add|remove|preview`: operators managing a running server's
//! connectors.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::Failure;
use super::output::{cell, items, print_json, print_table};
use super::progress::Progress;
use super::remote::{Body, ServerArgs};

#[derive(Subcommand)]
pub enum ConnectorCommand {
    /// List the installed connectors.
    List {
        /// Print the API's JSON (config schemas included) instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Upload a component as connector NAME (replacing an uploaded one of that name).
    Add {
        /// The name webhooks will use (`connector.name`), whatever the component's `describe` says.
        name: String,
        /// The component (`.wasm`, built for wasm32-wasip2).
        file: PathBuf,
        /// Replace a built-in connector of that name (removing the upload brings it back).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Remove an uploaded connector.
    Remove {
        name: String,
        /// Even though webhooks use it (their deliveries then fail as plugin errors).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show what connector NAME would send for an event.
    Preview {
        name: String,
        /// The event, as sent to `POST /v1/events` (JSON file).
        #[arg(long)]
        event: PathBuf,
        /// The connector config (JSON).
        #[arg(long, default_value = "{}")]
        config: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

pub async fn run(command: ConnectorCommand) -> Result<(), Failure> {
    match command {
        ConnectorCommand::List { json, server } => {
            let connectors = server.get("/v1/connectors").await?;
            if json {
                print_json(&connectors);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = items(&connectors)
                .iter()
                .map(|c| {
                    let kind = if c["builtin"] == json!(true) { "built-in" } else { "uploaded" };
                    vec![cell(c, "name"), cell(c, "version"), kind.to_owned(), cell(c, "description")]
                })
                .collect();
            print_table(&["NAME", "VERSION", "KIND", "DESCRIPTION"], &rows);
        }
        ConnectorCommand::Add { name, file, force, server } => {
            let bytes = read(&file)?;
            let installed = server.get("/v1/connectors").await?;
            let shadows =
                items(&installed).iter().any(|c| c["name"] == json!(name) && c["builtin"] == json!(true));
            if shadows && !force {
                return Err(Failure(format!(
                    "{name:?} is a built-in connector: uploading would replace it for every webhook \
                     that uses it. Pick another name, or pass --force to replace it"
                )));
            }
            let progress = Progress::start(format!(
                "uploading {} ({} KiB); the server compiles it (a large JavaScript or Python \
                 component takes 30-45 s the first time)",
                file.display(),
                bytes.len() / 1024
            ));
            let path = format!("/v1/connectors/{name}");
            let loaded = server.call(Method::PUT, &path, Some(Body::Wasm(bytes))).await;
            progress.finish();
            let loaded = loaded?.unwrap_or_default();
            println!(
                "connector {name:?} installed: {} {} ({})",
                loaded["version"].as_str().unwrap_or_default(),
                loaded["description"].as_str().unwrap_or_default(),
                loaded["hash"].as_str().unwrap_or_default()
            );
        }
        ConnectorCommand::Remove { name, force, server } => {
            let path = format!("/v1/connectors/{name}{}", if force { "?force=true" } else { "" });
            server.call(Method::DELETE, &path, None).await?;
            println!("removed connector {name:?}");
        }
        ConnectorCommand::Preview { name, event, config, server } => {
            let event: Value = serde_json::from_slice(&read(&event)?)
                .map_err(|e| Failure(format!("the event file is not JSON: {e}")))?;
            let config: Value =
                serde_json::from_str(&config).map_err(|e| Failure(format!("--config is not JSON: {e}")))?;
            let body = json!({"event": event, "config": config});
            let path = format!("/v1/connectors/{name}/preview");
            print_json(&server.call(Method::POST, &path, Some(Body::Json(body))).await?.unwrap_or_default());
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure(format!("cannot read {}: {e}", path.display())))
}
