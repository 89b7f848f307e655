//! `sutazai-headless`: the SutazAI command line without the desktop shell, for machines
//! without a display and for end-to-end tests that spawn (and `kill -9`) a real server.

use clap::Parser as _;
use sutazai_cli::Cli;

fn main() -> anyhow::Result<()> {
    sutazai_cli::main_with(Cli::parse())
}
