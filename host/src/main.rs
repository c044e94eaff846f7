//! The `wasmhook` command: parses the command line and hands over to the library.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use wasmhook::runtime::{Runtime, RuntimeConfig};
use wasmhook::tryout::{self, PluginSource};
use wasmhook::{Config, serve};

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
    /// Operators: mint tokens on a running server.
    #[command(subcommand)]
    Token(TokenCommand),
    /// List webhooks on a running server.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Operators: manage the connectors of a running server.
    #[command(subcommand)]
    Connector(ConnectorCommand),
    /// Apply pending schema migrations to a PostgreSQL database (hosts starting together
    /// with --migrate do the same, once); with --from, then copy a deployment on the embedded
    /// database into it.
    Migrate(MigrateArgs),
}

#[derive(Args)]
struct MigrateArgs {
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

#[derive(Subcommand)]
enum ConnectorCommand {
    /// List the installed connectors.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Upload a component as connector NAME (replacing one of that name).
    Add {
        name: String,
        file: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Remove an uploaded connector.
    Remove {
        name: String,
        /// Even though webhooks use it.
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

/// Flags override environment variables, which override the config file, which overrides
/// the defaults.
#[derive(Args)]
struct ServeArgs {
    /// TOML config file (keys as the long flags, e.g. `listen`, `retry-schedule`).
    #[arg(long, env = "WASMHOOK_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "WASMHOOK_LISTEN")]
    listen: Option<SocketAddr>,
    /// Directory for the database, keys and the generated operator token [default: wasmhook-data].
    #[arg(long, env = "WASMHOOK_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A PostgreSQL database (postgres://user@host/db) instead of the embedded one; hosts
    /// sharing it need the same `secret-key` and `operator-tokens` (config file).
    #[arg(long, env = "WASMHOOK_DATABASE", hide_env_values = true)]
    database: Option<String>,
    /// Apply pending schema migrations to the database at start.
    #[arg(long, env = "WASMHOOK_MIGRATE")]
    migrate: bool,
    /// Directory for compiled plugins [default: wasmhook-cache].
    #[arg(long, env = "WASMHOOK_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// An operator token (otherwise one is generated into the data directory).
    #[arg(long, env = "WASMHOOK_OPERATOR_TOKEN", hide_env_values = true)]
    operator_token: Option<String>,
    /// Allow webhooks to loopback and private addresses (development and tests).
    #[arg(long, env = "WASMHOOK_ALLOW_PRIVATE_DESTINATIONS")]
    allow_private_destinations: bool,
    /// Delays between delivery attempts [default: 30s,5m,30m,2h].
    #[arg(long, env = "WASMHOOK_RETRY_SCHEDULE", value_parser = |s: &str| wasmhook::config::parse_schedule(s).map(Schedule))]
    retry_schedule: Option<Schedule>,
}

/// A retry schedule as one flag value (a bare `Vec` would make clap expect several values).
#[derive(Clone)]
struct Schedule(Vec<Duration>);

/// Where the running server is.
#[derive(Args)]
struct ServerArgs {
    #[arg(long, env = "WASMHOOK_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    #[arg(long, env = "WASMHOOK_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Mint a token for one user (prints it once).
    Create {
        #[arg(long)]
        user: String,
        /// Companies the user may see, comma-separated.
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
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Subcommand)]
enum WebhookCommand {
    /// List the webhooks the token may see.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
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

// The delivery path allocates many small, short-lived buffers across threads; glibc's malloc
// spent a fifth of the engine's time on them (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Transparent huge pages made the allocator fault in and zero 2 MiB pages as storage's
    // short-lived buffers came and went (a tenth of the server's CPU under load; see
    // BENCHMARKS.md). The setting is the process's own and leaves the system's alone.
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
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
            Command::Migrate(MigrateArgs { database, from }) => run_migrate(&database, from.as_deref()).await,
            Command::Plugin(PluginCommand::Run { plugin, event, config, json, cache }) => {
                run_plugin(&plugin, &event, &config, json, cache).await
            }
            Command::Token(TokenCommand::Create { user, companies, all_companies, scope, server }) => {
                let body = serde_json::json!({
                    "userId": user, "companies": companies, "allCompanies": all_companies, "scope": scope,
                });
                call_server(&server, reqwest::Method::POST, "/v1/tokens", Some(Body::Json(body))).await
            }
            Command::Webhook(WebhookCommand::List { server }) => {
                call_server(&server, reqwest::Method::GET, "/v1/webhooks", None).await
            }
            Command::Connector(command) => run_connector(command).await,
        }
    })
}

/// Migrates the database; with `from`, copies that data directory's deployment into it.
async fn run_migrate(database: &str, from: Option<&Path>) -> ExitCode {
    let location = wasmhook::store::Location::Postgres(database.to_owned());
    if let Some(dir) = from {
        return run_copy(dir, &location).await;
    }
    match wasmhook::store::migrate_postgres(database).await {
        Ok(applied) => println!("{}", migrated(&location, &applied)),
        Err(e) => {
            eprintln!("error: cannot migrate {location}: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn migrated(location: &wasmhook::store::Location, applied: &[u64]) -> String {
    match applied {
        [] => format!("{location}: the schema is up to date"),
        applied => format!("{location}: applied migrations {applied:?}"),
    }
}

/// Copies the deployment in the data directory `dir` into the database `to` (migrated first).
async fn run_copy(dir: &Path, to: &wasmhook::store::Location) -> ExitCode {
    use wasmhook::store::transfer::{self, Progress};
    let from = wasmhook::store::Location::Sled(dir.join("db"));
    if !dir.join("db").is_dir() {
        eprintln!(
            "error: {} holds no embedded database ({from} is missing): --from takes the data \
             directory, as given to `wasmhook serve --data-dir`",
            dir.display()
        );
        return ExitCode::FAILURE;
    }
    let copied = transfer::copy(&from, to, |progress| match progress {
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
    .await;
    if let Err(e) = copied {
        eprintln!("error: cannot copy {from} into {to}: {e}");
        return ExitCode::FAILURE;
    }
    println!(
        "done; not copied: idempotency keys. Every host on {to} must be configured with the same \
         secret key — the base64 text of {} as `secret-key = \"…\"` in its config file — and the \
         same operator tokens (`operator-tokens`; the one this directory generated is in {}).",
        dir.join("secret-key").display(),
        dir.join("operator-token").display()
    );
    ExitCode::SUCCESS
}

async fn run_serve(args: ServeArgs) -> ExitCode {
    // Everything the server writes (database, keys, compiled plugins) is for its user alone.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let mut config = match Config::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(url) = args.database {
        config.database = Some(url);
    }
    config.migrate |= args.migrate;
    if let Some(dir) = args.cache_dir {
        config.cache_dir = dir;
    }
    if let Some(token) = args.operator_token {
        config.operator_tokens = vec![token];
    }
    config.allow_private_destinations |= args.allow_private_destinations;
    if let Some(Schedule(schedule)) = args.retry_schedule {
        config.retry_schedule = schedule;
    }
    let shutdown = shutdown_signal();
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    match serve(config, listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_connector(command: ConnectorCommand) -> ExitCode {
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|e| eprintln!("error: cannot read {}: {e}", path.display()))
    };
    match command {
        ConnectorCommand::List { server } => {
            call_server(&server, reqwest::Method::GET, "/v1/connectors", None).await
        }
        ConnectorCommand::Add { name, file, server } => {
            let Ok(bytes) = read(&file) else { return ExitCode::FAILURE };
            call_server(
                &server,
                reqwest::Method::PUT,
                &format!("/v1/connectors/{name}"),
                Some(Body::Wasm(bytes)),
            )
            .await
        }
        ConnectorCommand::Remove { name, force, server } => {
            let path = format!("/v1/connectors/{name}{}", if force { "?force=true" } else { "" });
            call_server(&server, reqwest::Method::DELETE, &path, None).await
        }
        ConnectorCommand::Preview { name, event, config, server } => {
            let Ok(event) = read(&event) else { return ExitCode::FAILURE };
            let parsed = (
                serde_json::from_slice::<serde_json::Value>(&event),
                serde_json::from_str::<serde_json::Value>(&config),
            );
            let (Ok(event), Ok(config)) = parsed else {
                eprintln!("error: the event file and --config must be JSON");
                return ExitCode::FAILURE;
            };
            let body = serde_json::json!({"event": event, "config": config});
            call_server(
                &server,
                reqwest::Method::POST,
                &format!("/v1/connectors/{name}/preview"),
                Some(Body::Json(body)),
            )
            .await
        }
    }
}

/// A request body for the API.
enum Body {
    Json(serde_json::Value),
    Wasm(Vec<u8>),
}

/// Calls the API of a running server and prints its JSON answer.
async fn call_server(
    server: &ServerArgs,
    method: reqwest::Method,
    path: &str,
    body: Option<Body>,
) -> ExitCode {
    let url = format!("{}{path}", server.server.trim_end_matches('/'));
    let mut request = reqwest::Client::new().request(method, &url).bearer_auth(&server.token);
    match body {
        Some(Body::Json(json)) => request = request.json(&json),
        Some(Body::Wasm(bytes)) => request = request.header("content-type", "application/wasm").body(bytes),
        None => {}
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => {
            eprintln!("error: cannot reach {url}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let pretty = serde_json::from_str::<serde_json::Value>(&text)
        .map(|v| serde_json::to_string_pretty(&v).unwrap_or(text.clone()))
        .unwrap_or(text);
    if status.is_success() {
        println!("{pretty}");
        ExitCode::SUCCESS
    } else {
        eprintln!("error: {status}: {pretty}");
        ExitCode::FAILURE
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

/// Completes on ctrl-c or SIGTERM. The handlers are installed before this returns, so a
/// signal that arrives while the server is still starting is not lost (nor fatal).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = ctrl_c.await;
    }
}
