//! `spaced` command line.
fn main() {}
