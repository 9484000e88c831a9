//! `spaced` command line: parse, set up logging and the runtime, run, map errors to the exit
//! code.
#![allow(clippy::print_stdout)]

mod cli;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use spaced::{Options, logging, reload};

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { file } => check(&file),
        Command::Explain { .. } => explain(cli.command),
        Command::Run { config, no_watch } => {
            let mut opts = Options::new(config);
            opts.watch = !no_watch;
            serve(|| spaced::run(opts))
        }
        Command::Demo { config } => serve(|| spaced::demo::run(config)),
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
    match runtime.block_on(f()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spaced: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(file: &Path) -> ExitCode {
    match reload::load(file) {
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

fn explain(_command: Command) -> ExitCode {
    eprintln!("spaced explain: not wired yet");
    ExitCode::FAILURE
}
