//! The `wasmhook` command: parses the command line and hands over to the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use wasmhook::runtime::{Runtime, RuntimeConfig};
use wasmhook::tryout::{self, PluginSource};
use wasmhook::{ServeConfig, serve};

#[derive(Parser)]
#[command(name = "wasmhook", version, about = "Webhook host with WebAssembly plugins")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the host: HTTP API, storage and the built-in connectors.
    Serve(ServeArgs),
    /// Work with plugins locally.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "WASMHOOK_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory for the database and generated keys.
    #[arg(long, env = "WASMHOOK_DATA_DIR", default_value = "wasmhook-data")]
    data_dir: PathBuf,
    #[command(flatten)]
    cache: CacheArgs,
}

#[derive(Args)]
struct CacheArgs {
    /// Directory for compiled plugins (kept apart from the data directory).
    #[arg(long, env = "WASMHOOK_CACHE_DIR", default_value = "wasmhook-cache")]
    cache_dir: PathBuf,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Run a plugin on one event as the host would, and show what it would send.
    Run {
        /// A component file (`.wasm`) or the name of a built-in connector (e.g. `json`).
        plugin: String,
        /// The event, as sent to `POST /v1/events` (JSON file).
        #[arg(long)]
        event: PathBuf,
        /// The webhook's connector config (JSON).
        #[arg(long, default_value = "{}")]
        config: String,
        /// Print a JSON report instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cache: CacheArgs,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => run_serve(args).await,
            Command::Plugin(PluginCommand::Run { plugin, event, config, json, cache }) => {
                run_plugin(&plugin, &event, &config, json, cache).await
            }
        }
    })
}

async fn run_serve(args: ServeArgs) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let config = ServeConfig {
        data_dir: args.data_dir,
        runtime: RuntimeConfig { cache_dir: Some(args.cache.cache_dir), ..RuntimeConfig::default() },
    };
    match serve(config, listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_plugin(plugin: &str, event: &PathBuf, config: &str, json: bool, cache: CacheArgs) -> ExitCode {
    let event_json = match std::fs::read_to_string(event) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", event.display());
            return ExitCode::FAILURE;
        }
    };
    let runtime_config = RuntimeConfig { cache_dir: Some(cache.cache_dir), ..RuntimeConfig::default() };
    let runtime = match Runtime::new(runtime_config) {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match tryout::run(&runtime, &PluginSource::parse(plugin), &event_json, config).await {
        Ok(report) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&report).expect("the report is plain data"));
            } else {
                print!("{}", report.render());
            }
            if report.result.is_ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
