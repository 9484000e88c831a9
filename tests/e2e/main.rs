//! End-to-end tests: the real `spaced` binary (subprocess, for signals and the CLI) or the
//! real daemon in-process, on loopback ports, with real clients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod admin;
mod cli;
mod docgen;
mod fleet;
mod logs;
mod ops;
mod process;
mod reload;
mod stack;
mod upgrade;
