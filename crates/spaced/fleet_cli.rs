//! `spaced fleet …`: arguments to `spaced::fleet::cli`, results to output and exit codes.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use spaced::fleet::cli::{self, Dyno, Target};
use spaced::logging;

use crate::cli::{FleetCommand, FleetTarget};

fn target(t: FleetTarget) -> Target {
    Target {
        config: t.config,
        etcd: t.etcd,
        prefix: t.prefix,
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("spaced: cannot start the runtime: {e}");
            None
        }
    }
}

pub(crate) fn run(command: FleetCommand) -> ExitCode {
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    let result = match command {
        FleetCommand::Put { target: t, file } => rt.block_on(async {
            let rev = cli::put(&target(t), &file).await?;
            println!("{}: written as revision {rev}", file.display());
            Ok::<bool, anyhow::Error>(true)
        }),
        FleetCommand::Register {
            target: t,
            app,
            process,
            number,
            addr,
            zone,
            ttl,
        } => {
            logging::init();
            let dyno = Dyno {
                app,
                process,
                number,
                addr,
                zone,
                ttl,
            };
            rt.block_on(async { cli::register(&target(t), &dyno).await.map(|()| true) })
        }
        FleetCommand::Status { target: t, json } => rt.block_on(async {
            let (all, out) = cli::status(&target(t), json).await?;
            println!("{}", out.trim_end());
            Ok(all)
        }),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("spaced: {e:#}");
            ExitCode::from(2)
        }
    }
}
