//! `spaced` command line: parse, set up logging and the runtime, run, map errors to the exit
//! code.
#![allow(clippy::print_stdout)]

mod cli;
mod docgen;
mod fleet_cli;
mod purge;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use spaced::{Options, logging, reload};

use crate::cli::{Cli, Command, ListenerArg};

/// mimalloc rather than glibc malloc: the proxy paths make a dozen short-lived allocations
/// per request (hyper's header maps and buffers), and glibc spent ~5 % of the router's CPU
/// in malloc/free/consolidate under load (benches/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Before any thread exists: taking LISTEN_FDS unsets it (socket activation, upgrades).
    let (adopted, refused) = spaced_net::listeners::adopt_inherited();
    let cli = Cli::parse();
    match cli.command {
        Command::Check { file } => check(&file),
        Command::Explain { .. } => explain(cli.command),
        Command::Run { config, no_watch } => {
            let mut opts = Options::new(config);
            opts.watch = !no_watch;
            serve(|| {
                for (transport, addr, name) in &adopted {
                    tracing::info!(transport = transport.name(), server.addr = %addr, name, "inherited listening socket");
                }
                for (fd, why) in &refused {
                    tracing::warn!(fd, error = %why, "inherited descriptor is not a TCP listener or UDP socket; closed");
                }
                spaced::run(opts)
            })
        }
        Command::Demo { config } => serve(|| spaced::demo::run(config)),
        Command::Fleet { command } => fleet_cli::run(command),
        Command::Docs(docs) => docgen::run(&docs),
    }
}

fn serve<F, Fut>(f: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("spaced: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Dropped with the runtime when `f` returns.
    runtime.spawn(purge::run());
    match runtime.block_on(f()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spaced: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(file: &Path) -> ExitCode {
    let loaded = reload::load(file).and_then(|loaded| {
        // With [fleet], shared keys belong in etcd: name any the file holds.
        if loaded.policy.fleet.is_some() {
            spaced::fleet::check_local(file)?;
        }
        Ok(loaded)
    });
    match loaded {
        Ok(loaded) => {
            let p = &loaded.policy;
            let hosts: usize = p.apps.iter().map(|a| a.hosts.len()).sum();
            println!(
                "{}: ok: space {:?}, {} apps, {} hosts, {} dynos; router {}+{}tls+{}internal listeners, resolver {}, egress {}+{}socks+{}transparent, {} tls certs",
                file.display(),
                p.space.name,
                p.apps.len(),
                hosts,
                p.dyno_count(),
                p.router.listen.len(),
                p.router.tls_listen.len(),
                p.router.internal_listen.len(),
                p.resolver.listen.len(),
                p.egress.listen.len(),
                p.egress.socks_listen.len(),
                p.egress.transparent_listen.len(),
                p.tls.len(),
            );
            // What a start would have: the soft limit raised to the hard one.
            let nofile = spaced::limits::warning(p, spaced::limits::hard_nofile());
            // On stderr: stdout stays the one-line summary scripts read.
            for w in spaced::warnings::collect(p).into_iter().chain(nofile) {
                eprintln!("{}: warning: {w}", file.display());
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                println!("{e}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Prints the router's decision and the rule that made it; exit 0 when allowed, 1 when
/// denied, 2 when the file is invalid (so scripts can tell a policy answer from a broken
/// policy).
fn explain(command: Command) -> ExitCode {
    let Command::Explain {
        config,
        client,
        host,
        listener,
        peer,
        xff,
    } = command
    else {
        return ExitCode::FAILURE;
    };
    let loaded = match reload::load(&config) {
        Ok(loaded) => loaded,
        Err(errors) => {
            for e in &errors.0 {
                println!("{e}");
            }
            return ExitCode::from(2);
        }
    };
    let query = spaced_router::explain::Query {
        listener: match listener {
            ListenerArg::External => spaced_router::access::Listener::External,
            ListenerArg::Internal => spaced_router::access::Listener::Internal,
        },
        client,
        peer,
        xff,
        host,
    };
    let answer = spaced_router::explain::explain(&loaded.policy, &query);
    println!("{answer}");
    if answer.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
