//! `wasmhook plugin new` and `run`: starting a plugin project, and trying a plugin on one
//! event, locally, as the host would run it.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::Failure;
use super::progress::Progress;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::scaffold::{self, Lang, Project};
use crate::tryout::{self, PluginSource};

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Start a connector project that builds and runs as it stands.
    New {
        /// The connector's name (a-z, 0-9, - and _), also the project's folder.
        name: String,
        /// The language to write it in.
        #[arg(long, value_enum)]
        lang: Lang,
        /// Where to write the project (default: ./NAME); it must not exist, or be empty.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The Rust SDK to depend on (plugin-sdk/ in a wasmhook checkout; default: the one this
        /// binary was built from).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
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

#[derive(Args)]
pub struct CacheArgs {
    /// Directory for compiled plugins (kept apart from the data directory).
    #[arg(long, env = "WASMHOOK_CACHE_DIR", default_value = "wasmhook-cache")]
    cache_dir: PathBuf,
}

pub async fn run(command: PluginCommand) -> Result<(), Failure> {
    match command {
        PluginCommand::New { name, lang, dir, sdk } => new(&name, lang, dir, sdk),
        PluginCommand::Run { plugin, event, config, json, cache } => {
            try_out(&plugin, &event, &config, json, cache).await
        }
    }
}

fn new(name: &str, lang: Lang, dir: Option<PathBuf>, sdk: Option<PathBuf>) -> Result<(), Failure> {
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    let project = Project { name, dir: &dir, sdk: sdk.as_deref() };
    let files = scaffold::new(lang, &project).map_err(|e| Failure(e.to_string()))?;
    println!("wrote a {lang} connector in {}: {}", dir.display(), files.join(", "));
    println!("next:");
    println!("  cd {}", dir.display());
    println!("  {}", lang.build_command());
    println!("  wasmhook plugin run {} --event event.json", lang.component(name));
    Ok(())
}

async fn try_out(
    plugin: &str,
    event: &Path,
    config: &str,
    json: bool,
    cache: CacheArgs,
) -> Result<(), Failure> {
    let event_json = std::fs::read_to_string(event)
        .map_err(|e| Failure(format!("cannot read {}: {e}", event.display())))?;
    let runtime_config = RuntimeConfig { cache_dir: Some(cache.cache_dir), ..RuntimeConfig::default() };
    let runtime = Runtime::new(runtime_config).map_err(|e| Failure(e.to_string()))?;
    let progress = Progress::spinner(format!("loading and running {plugin}"));
    let report = tryout::run(&runtime, &PluginSource::parse(plugin), &event_json, config).await;
    progress.finish();
    let report = report.map_err(|e| Failure(e.to_string()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report).expect("the report is plain data"));
    } else {
        print!("{}", report.render());
    }
    match &report.result {
        Ok(_) => Ok(()),
        // The report already says what went wrong.
        Err(_) => Err(Failure(String::new())),
    }
}
