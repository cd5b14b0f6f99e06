//! `s3bench`: an S3 load generator for comparing the artifact-store gateway with another S3
//! server on the same machine (`scripts/bench.sh` drives it).
//!
//! Every workload prints one JSON line to stdout; `summary` reads those lines back and prints
//! medians and gateway/reference ratios against the project's floors.
//!
//! Modules:
//! - `client`: the aws-sdk-s3 client, configured so the client spends no CPU on checksums
//! - `body`: request bodies generated from memory, unique per object
//! - `workload`: the workloads and their measurements
//! - `loopback`: a static file server and a GET client, for the machine's loopback limit
//! - `summary`: medians, ratios and floors from a results file

mod body;
mod client;
mod loopback;
mod summary;
mod workload;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run workloads against an S3 endpoint, one JSON line per workload.
    Run(workload::RunArgs),
    /// Serve one file over HTTP/1.1 (GET only), for `fetch`.
    ServeFile {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
        /// The file served at every path.
        file: PathBuf,
    },
    /// GET a URL with hyper and drain the body; one JSON line with the best and median MiB/s.
    Fetch(loopback::FetchArgs),
    /// Print medians and ratios from a results file.
    Summary {
        /// The JSON lines written by `run`, `fetch` and the bench script.
        results: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Run(args) => runtime.block_on(workload::run(args)),
        Command::ServeFile { listen, file } => runtime.block_on(loopback::serve_file(listen, file)),
        Command::Fetch(args) => runtime.block_on(loopback::fetch(args)),
        Command::Summary { results } => summary::print(&results),
    }
}
