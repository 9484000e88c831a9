//! The command line (`shared/spec/BEHAVIOR.md`, "Command line").

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use clap_complete::Shell;

/// `--version`: the package version and the commit it was built from (`build.rs`).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SPACED_COMMIT"),
    ")"
);

/// spaced: the network data plane of a private space.
#[derive(Debug, Parser)]
#[command(name = "spaced", version = VERSION, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the daemon.
    Run {
        /// The policy file.
        #[arg(long, short, default_value = "config/spaced.toml")]
        config: PathBuf,
        /// Do not watch the files; reload only on SIGHUP or POST /reload.
        #[arg(long)]
        no_watch: bool,
    },
    /// Validate a policy file: a one-line summary and exit 0, or every error as
    /// FILE:LINE:COL: message and exit 1.
    Check {
        /// The policy file.
        file: PathBuf,
    },
    /// Run config/demo.toml with sample dynos started in-process.
    Demo {
        /// The demo policy file.
        #[arg(long, short, default_value = "config/demo.toml")]
        config: PathBuf,
    },
    /// The fleet: shared policy and dynos in etcd.
    Fleet {
        #[command(subcommand)]
        command: FleetCommand,
    },
    /// Explain the router's decision for a client and host, naming the rule that made it.
    Explain {
        /// The policy file.
        #[arg(long, short)]
        config: PathBuf,
        /// The client address (the PROXY header's source when --peer is a trusted proxy).
        #[arg(long)]
        client: IpAddr,
        /// The Host header.
        #[arg(long)]
        host: String,
        /// Which listener the connection arrives on.
        #[arg(long, value_enum, default_value_t = ListenerArg::External)]
        listener: ListenerArg,
        /// The connecting peer, when it is not the client (a load balancer).
        #[arg(long)]
        peer: Option<IpAddr>,
        /// The X-Forwarded-For header the peer sends.
        #[arg(long)]
        xff: Option<String>,
    },
    /// Shell completions and man pages, for packagers (hidden).
    #[command(flatten)]
    Docs(DocsCommand),
}

/// `spaced fleet …` (OPERATIONS.md "Fleet").
#[derive(Debug, Subcommand)]
pub(crate) enum FleetCommand {
    /// Validate a policy document, then write it as the fleet's `policy`.
    Put {
        #[command(flatten)]
        target: FleetTarget,
        /// The policy document (the shared part of the schema).
        file: PathBuf,
    },
    /// Register a dyno and keep its lease alive until stopped (SIGTERM/SIGINT delete it).
    Register {
        #[command(flatten)]
        target: FleetTarget,
        /// The app.
        app: String,
        /// The process type (`web` receives routed HTTP).
        process: String,
        /// The dyno's number.
        number: u32,
        /// Where it listens, ip:port.
        addr: std::net::SocketAddr,
        /// Its zone.
        #[arg(long)]
        zone: Option<String>,
        /// The lease's TTL: how long a dyno whose supervisor died stays registered.
        #[arg(long, default_value = "10s", value_parser = duration)]
        ttl: std::time::Duration,
    },
    /// Every registered instance and whether it serves the latest revision (exit 1 when
    /// one does not).
    Status {
        #[command(flatten)]
        target: FleetTarget,
        /// The JSON of `GET /fleet` instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Where the fleet is.
#[derive(Debug, clap::Args)]
pub(crate) struct FleetTarget {
    /// A host's file: its `[fleet]` section says where etcd is.
    #[arg(long, short)]
    pub(crate) config: Option<PathBuf>,
    /// An etcd endpoint (repeatable), instead of or over the file's.
    #[arg(long)]
    pub(crate) etcd: Vec<String>,
    /// The space's prefix, instead of or over the file's.
    #[arg(long)]
    pub(crate) prefix: Option<String>,
}

fn duration(s: &str) -> Result<std::time::Duration, String> {
    spaced_config::parse_duration(s)
        .ok_or_else(|| format!("invalid duration {s:?}: expected e.g. \"10s\""))
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ListenerArg {
    External,
    Internal,
}

/// The packaging subcommands, flattened into [`Command`]; `docgen` runs them.
#[derive(Debug, Subcommand)]
pub(crate) enum DocsCommand {
    /// Print a completion script for SHELL on stdout.
    #[command(hide = true)]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the spaced(1) man page on stdout, or write it and one page per subcommand
    /// (spaced-run(1), ...) into a directory.
    #[command(hide = true)]
    Man {
        /// Write spaced.1 and spaced-SUBCOMMAND.1 here instead of printing spaced.1.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}
