//! `spaced completions SHELL` and `spaced man [--out-dir DIR]`: shell completions and man
//! pages generated from the command line's own definition, so they never drift from it.
//! Hidden from `--help`: they serve packagers (`dist/deb/build.sh`), not operators.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, DocsCommand};

pub(crate) fn run(command: &DocsCommand) -> ExitCode {
    let result = match command {
        DocsCommand::Completions { shell } => completions(*shell),
        // As `generate_to` does for the pages it writes: no `help` subcommand in the page.
        DocsCommand::Man { out_dir: None } => {
            clap_mangen::Man::new(Cli::command().disable_help_subcommand(true))
                .render(&mut io::stdout().lock())
        }
        DocsCommand::Man {
            out_dir: Some(dir), ..
        } => man_pages(dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spaced: {e}");
            ExitCode::FAILURE
        }
    }
}

fn completions(shell: Shell) -> io::Result<()> {
    // Into memory first: `generate` panics when its writer fails (a closed pipe, as in
    // `spaced completions bash | head`), where a write error should be reported.
    let mut script = Vec::new();
    clap_complete::generate(
        shell,
        &mut without_hidden(Cli::command()),
        "spaced",
        &mut script,
    );
    let mut out = io::stdout().lock();
    out.write_all(&script)?;
    out.flush()
}

/// `cli` with its hidden subcommands left out: clap_complete completes hidden subcommands
/// (clap_mangen does not), and an operator's shell should not offer these. clap cannot
/// remove a subcommand, so the top level is built again around the visible ones.
fn without_hidden(cli: clap::Command) -> clap::Command {
    let visible = cli.get_subcommands().filter(|s| !s.is_hide_set()).cloned();
    let mut top = clap::Command::new("spaced")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(cli.is_subcommand_required_set())
        .subcommands(visible);
    if let Some(about) = cli.get_about() {
        top = top.about(about.clone());
    }
    top
}

/// spaced.1 plus a page per visible subcommand, named as git names its own
/// (`spaced-run.1`, whose synopsis reads `spaced run`).
fn man_pages(dir: &Path) -> io::Result<()> {
    let located = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(located)?;
    clap_mangen::generate_to(Cli::command(), dir).map_err(located)
}
