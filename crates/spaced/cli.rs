//! The command line (`shared/spec/BEHAVIOR.md`, "Command line").

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

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
    Docs(crate::docgen::DocsCommand),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ListenerArg {
    External,
    Internal,
}
