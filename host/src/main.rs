//! The `vcon-host` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Result};
use clap::{Parser, Subcommand};
use vcon_host::commands::plugins::{self, CheckRequest};
use vcon_host::commands::{dlq, ingest, provision, run, vcons};
use vcon_host::pipeline::Pipeline;
use vcon_host::{app, plugin_paths};

/// mimalloc instead of glibc's malloc: the API allocates and frees request buffers on several
/// threads, which glibc's arenas served at about a tenth of the samples of a `perf record` of
/// `cargo xtask bench api`. Plugins keep their own allocator (each `cdylib` has its own);
/// nothing allocated on one side is freed on the other.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Moves vCon conversation records through processing chains into storage plugins: the
/// storage side of the vCon Server, with the same config.yml.
#[derive(Parser)]
#[command(name = "vcon-host", version, propagate_version = true)]
struct Cli {
    /// The config file (default: $CONSERVER_CONFIG_FILE, else ./config.yml)
    #[arg(long, short, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// A directory to look for plugins in, before host.plugin_dirs, VCON_PLUGIN_PATH and the
    /// build output (repeatable)
    #[arg(long = "plugin-dir", global = true, value_name = "DIR")]
    plugin_dirs: Vec<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the chain workers (until SIGINT/SIGTERM; SIGHUP reloads the config)
    Run {
        /// Worker threads (default: host.workers, else the number of cores)
        #[arg(long)]
        workers: Option<usize>,
        /// Where the HTTP API listens (default: host.bind, else 127.0.0.1:8000; port 0 picks
        /// a free one)
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
    },
    /// Validate vCon files (or directories of *.json) and queue them for the chains
    Ingest {
        /// The ingress list to queue on (repeatable; default: the first enabled chain's
        /// ingress lists)
        #[arg(long = "list", value_name = "NAME")]
        lists: Vec<String>,
        /// Send to a running host's API (e.g. http://127.0.0.1:8000/api) instead of writing to
        /// the broker directly
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// The API key for --url
        #[arg(long, env = "CONSERVER_API_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The header carrying the key
        #[arg(
            long,
            env = "CONSERVER_HEADER_NAME",
            default_value = "x-conserver-api-token"
        )]
        header_name: String,
        /// Files or directories
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print a vCon: from the hot store, then the storages in config order
    Get {
        /// The vCon's uuid
        uuid: String,
        /// Read from this storage only
        #[arg(long)]
        storage: Option<String>,
    },
    /// Delete a vCon from the hot store and every storage (or one storage)
    Delete {
        /// The vCon's uuid
        uuid: String,
        /// Delete from this storage only
        #[arg(long)]
        storage: Option<String>,
    },
    /// Inspect and check storage plugins
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Check a config file
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Create or migrate storage schemas (tables, buckets, directories)
    Provision {
        /// Only this storage
        #[arg(long)]
        storage: Option<String>,
        /// Drop what exists first (asks for confirmation)
        #[arg(long)]
        recreate: bool,
        /// Do not ask
        #[arg(long)]
        yes: bool,
    },
    /// Inspect and replay dead letters
    #[command(subcommand)]
    Dlq(DlqCommand),
}

#[derive(Subcommand)]
enum PluginsCommand {
    /// List the plugins on the search path: name, version, ABI, capabilities, file
    List,
    /// Run the storage conformance suite against a plugin file, in a child process so a
    /// plugin that crashes is reported rather than fatal
    Check {
        /// The plugin file (.so)
        file: PathBuf,
        /// The storage's options as a JSON object (default: the plugin's defaults, with a
        /// fresh temporary location for plugins that store under `path`)
        #[arg(long, value_name = "JSON")]
        options: Option<String>,
        /// Allow checks that remove everything the storage holds (clear, provision
        /// --recreate); implied on a fresh temporary location
        #[arg(long)]
        destructive: bool,
        /// Internal: run the suite in this process, using DIR as the scratch location
        #[arg(long, hide = true, value_name = "DIR")]
        child_scratch: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Parse and validate the config, resolve every plugin, print warnings
    Check,
}

#[derive(Subcommand)]
enum DlqCommand {
    /// List dead letters: NAME is an ingress list, or storage:STORAGE
    List {
        /// An ingress list, or storage:STORAGE
        name: String,
        /// At most this many
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Replay dead letters: an ingress list's go back through the chain, a storage's are
    /// written to that storage again
    Replay {
        /// An ingress list, or storage:STORAGE
        name: String,
        /// At most this many
        #[arg(long, default_value_t = 1000)]
        count: usize,
    },
}

fn main() -> ExitCode {
    // `VCON_LOG` filters (default `warn`); `VCON_LOG_FORMAT=json` writes one JSON object per
    // line, with the request span (its id) on every event of an API request.
    let filter = tracing_subscriber::EnvFilter::try_from_env("VCON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("VCON_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().with_current_span(true).init();
    } else {
        builder.init();
    }
    match dispatch(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs a command; `Ok(false)` means it ran but the answer is "no" (a refused document, a
/// failed check, a vCon not found).
fn dispatch(cli: Cli) -> Result<bool> {
    let config_path = cli.config.clone().unwrap_or_else(app::default_config_path);
    let stdout = &mut std::io::stdout();
    let pipeline = || -> Result<Pipeline> {
        let config = app::load_config(&config_path)?;
        let search = app::search_path(&cli.plugin_dirs, &config);
        Pipeline::build(config, &search).map_err(|errors| anyhow!("{}", errors.join("\n")))
    };
    match cli.command {
        Command::Run { workers, bind } => run::run(&run::RunRequest {
            config: config_path,
            plugin_dirs: cli.plugin_dirs,
            workers,
            bind,
        })
        .map(|()| true),
        Command::Ingest {
            lists,
            url: Some(url),
            token,
            header_name,
            paths,
        } => {
            // The host applies its own config; --list is all this side decides.
            let files = ingest::collect_files(&paths)?;
            let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let target = ingest::HttpTarget {
                url,
                token,
                header_name,
            };
            let summary = ingest::ingest_http(&target, &files, &lists, progress)?;
            ingest::report(&summary, &lists, stdout)
        }
        Command::Ingest {
            lists,
            url: None,
            paths,
            ..
        } => {
            let config = app::load_config(&config_path)?;
            let lists = if lists.is_empty() {
                config
                    .chains
                    .iter()
                    .find(|c| c.enabled && !c.ingress_lists.is_empty())
                    .map(|c| c.ingress_lists.clone())
                    .ok_or_else(|| {
                        anyhow!("no enabled chain has an ingress list: name one with --list")
                    })?
            } else {
                lists
            };
            let broker = app::open_broker(&config)?;
            let files = ingest::collect_files(&paths)?;
            let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let summary = ingest::ingest(
                &*broker,
                &files,
                &lists,
                config.host.hot_ttl,
                config.host.keep_whitespace,
                progress,
            )?;
            ingest::report(&summary, &lists, stdout)
        }
        Command::Get { uuid, storage } => {
            let pipeline = pipeline()?;
            let broker = app::open_broker(&pipeline.config)?;
            vcons::get(&*broker, &pipeline, &uuid, storage.as_deref(), stdout)
        }
        Command::Delete { uuid, storage } => {
            let pipeline = pipeline()?;
            let broker = app::open_broker(&pipeline.config)?;
            vcons::delete(&*broker, &pipeline, &uuid, storage.as_deref(), stdout)
        }
        Command::Plugins(PluginsCommand::List) => {
            let mut dirs = cli.plugin_dirs.clone();
            if let Ok(loaded) = host_config::load(&config_path) {
                dirs.extend(loaded.config.host.plugin_dirs);
            }
            plugins::list(&plugin_paths::search_path(&dirs), stdout)
        }
        Command::Plugins(PluginsCommand::Check {
            file,
            options,
            destructive,
            child_scratch,
        }) => {
            let request = CheckRequest {
                file,
                options,
                destructive,
            };
            match child_scratch {
                Some(scratch) => plugins::check_in_child(&request, &scratch),
                None => plugins::check(&request, stdout),
            }
        }
        Command::Config(ConfigCommand::Check) => {
            let pipeline = pipeline()?;
            let config = &pipeline.config;
            println!(
                "{}: OK: {} storages, {} links, {} chains ({} enabled), broker {}",
                config.file.display(),
                config.storages.len(),
                config.links.len(),
                config.chains.len(),
                pipeline.chains.len(),
                config.host.broker
            );
            Ok(true)
        }
        Command::Provision {
            storage,
            recreate,
            yes,
        } => {
            let pipeline = pipeline()?;
            provision::provision(
                &pipeline,
                storage.as_deref(),
                recreate,
                yes,
                &mut std::io::stdin().lock(),
                stdout,
            )
        }
        Command::Dlq(DlqCommand::List { name, limit }) => {
            let config = app::load_config(&config_path)?;
            dlq::list(&*app::open_broker(&config)?, &name, limit, stdout)
        }
        Command::Dlq(DlqCommand::Replay { name, count }) => {
            let pipeline = pipeline()?;
            let broker = app::open_broker(&pipeline.config)?;
            dlq::replay(&*broker, &pipeline, &name, count, stdout)
        }
    }
}
