//! The `wasmhook` command line: the host (`serve`, `migrate`), trying plugins locally
//! (`plugin`, `receive`), and managing a running server through its API (`token`, `webhook`,
//! `deliveries`, `recover`, `retry`, `connector`). Each command's module parses its flags and
//! prints its answer; a failure is one line on stderr and exit status 1.

mod connector;
mod deliveries;
mod migrate;
mod output;
mod plugin;
mod progress;
mod receive;
mod remote;
mod serve;
mod token;
mod webhook;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "wasmhook", version, about = "Webhook host with WebAssembly plugins")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the host: HTTP API, web app, storage and the built-in connectors.
    Serve(serve::ServeArgs),
    /// Work with plugins locally.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// A local receiver for trying webhooks out: prints what arrives, checks signatures.
    Receive(receive::ReceiveArgs),
    /// Operators: mint, list and revoke tokens on a running server.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Manage webhooks on a running server.
    #[command(subcommand)]
    Webhook(webhook::WebhookCommand),
    /// A webhook's delivery log, newest first.
    Deliveries(deliveries::DeliveriesArgs),
    /// Re-queue a webhook's failed and paused deliveries (enable it first).
    Recover(deliveries::RecoverArgs),
    /// Send one finished delivery again.
    Retry(deliveries::RetryArgs),
    /// Operators: manage the connectors of a running server.
    #[command(subcommand)]
    Connector(connector::ConnectorCommand),
    /// Apply pending schema migrations to a PostgreSQL database (hosts starting together
    /// with --migrate do the same, once); with --from, then copy a deployment on the embedded
    /// database into it.
    Migrate(migrate::MigrateArgs),
}

/// Why a command failed, worded for the terminal (empty when the command printed it already).
#[derive(Debug)]
pub struct Failure(pub String);

/// Parses the command line, runs the command, and says how it went.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Plugin(command) => plugin::run(command).await,
            Command::Receive(args) => receive::run(args).await,
            Command::Token(command) => token::run(command).await,
            Command::Webhook(command) => webhook::run(command).await,
            Command::Deliveries(args) => deliveries::log(args).await,
            Command::Recover(args) => deliveries::recover(args).await,
            Command::Retry(args) => deliveries::retry(args).await,
            Command::Connector(command) => connector::run(command).await,
            Command::Migrate(args) => migrate::run(args).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(why)) => {
            if !why.is_empty() {
                eprintln!("error: {why}");
            }
            ExitCode::FAILURE
        }
    }
}
