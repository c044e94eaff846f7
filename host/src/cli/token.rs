//! `wasmhook token create|list|revoke`: operators minting and withdrawing tokens.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::Failure;
use super::output::{cell, items, print_json, print_table};
use super::remote::{Body, ServerArgs};

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Mint a token for one user (prints it once, in JSON unless --quiet).
    Create {
        /// The user the token acts for (their webhooks are theirs alone).
        #[arg(long)]
        user: String,
        /// Companies the user may see (for all their tokens and webhooks), comma-separated:
        /// the `companyId`s of the events they should receive.
        #[arg(
            long,
            value_delimiter = ',',
            required_unless_present = "all_companies",
            conflicts_with = "all_companies"
        )]
        companies: Vec<String>,
        /// Every company, said explicitly.
        #[arg(long)]
        all_companies: bool,
        /// `user` (manage webhooks) or `ingest` (send events).
        #[arg(long, default_value = "user", value_parser = ["user", "ingest"])]
        scope: String,
        /// What the token is for, shown by `token list`.
        #[arg(long)]
        description: Option<String>,
        /// Print only the token, for `TOKEN=$(wasmhook token create … -q)`.
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the tokens (never the tokens themselves).
    List {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Revoke a token by its id (`tok_…`, from `token list`): it stops working at once.
    Revoke {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

pub async fn run(command: TokenCommand) -> Result<(), Failure> {
    match command {
        TokenCommand::Create { user, companies, all_companies, scope, description, quiet, server } => {
            let body = json!({
                "userId": user, "companies": companies, "allCompanies": all_companies, "scope": scope,
                "description": description,
            });
            let created =
                server.call(Method::POST, "/v1/tokens", Some(Body::Json(body))).await?.unwrap_or_default();
            if quiet {
                println!("{}", created["token"].as_str().unwrap_or_default());
            } else {
                print_json(&created);
            }
        }
        TokenCommand::List { json, server } => {
            let tokens = server.get("/v1/tokens").await?;
            if json {
                print_json(&tokens);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = items(&tokens)
                .iter()
                .map(|t| {
                    let companies = companies(&t["companies"]);
                    vec![
                        cell(t, "id"),
                        cell(t, "userId"),
                        cell(t, "scope"),
                        companies,
                        cell(t, "createdAt"),
                        cell(t, "description"),
                    ]
                })
                .collect();
            print_table(&["ID", "USER", "SCOPE", "COMPANIES", "CREATED", "DESCRIPTION"], &rows);
        }
        TokenCommand::Revoke { id, server } => {
            server.call(Method::DELETE, &format!("/v1/tokens/{id}"), None).await?;
            println!("revoked {id}: it no longer authenticates");
        }
    }
    Ok(())
}

/// A user's companies as the API shows them (`"all"` or `{"only": [...]}`), in one cell.
pub(super) fn companies(value: &Value) -> String {
    match &value["only"] {
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
        _ => value.as_str().unwrap_or("-").to_owned(),
    }
}
