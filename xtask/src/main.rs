//! `cargo xtask`: the developer entry points, in Rust rather than shell scripts.
//!
//! - `build-plugins`: release cdylibs of every crate under `plugins/` into `target/plugins/`,
//!   each checked by loading it through the real loader and described in one line;
//! - `test`: builds the plugins, the test fixture plugins and the host, then runs every test;
//! - `run`: builds everything and starts `vcon-host run` on `config.yml`;
//! - `bench NAME`: runs a benchmark suite (`abi`, `vcon`, `ingest`, `api`, `broker`, `postgres`,
//!   `object-store`, `wal-vfs`).
//!
//! Every step prints the command it runs and where its output went.

mod plugins;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "vcon-host developer tasks", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build every first-party storage plugin (release) into target/plugins/
    BuildPlugins,
    /// Build the plugins, the test fixture plugins and the host, then run every test
    Test {
        /// Test only these packages (default: the whole workspace)
        #[arg(short, long = "package")]
        packages: Vec<String>,
        /// Extra arguments for `cargo test` (after `--`), e.g. a test name filter
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Build everything and start `vcon-host run` on config.yml
    Run {
        /// Extra arguments for `vcon-host run`
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run a benchmark suite: abi, vcon, ingest, api, broker, postgres, object-store, wal-vfs
    Bench {
        /// Which suite
        suite: String,
        /// Extra arguments for criterion (after `--`)
        #[arg(last = true)]
        args: Vec<String>,
    },
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::BuildPlugins => plugins::build_plugins().map(drop),
        Task::Test { packages, args } => plugins::test(&packages, &args),
        Task::Run { args } => plugins::run(&args),
        Task::Bench { suite, args } => plugins::bench(&suite, &args),
    }
}
