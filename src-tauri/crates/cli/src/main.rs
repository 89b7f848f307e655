//! `sutazai-headless`: the SutazAI command line without the desktop shell, for machines
//! without a display and for end-to-end tests that spawn (and `kill -9`) a real server.

use clap::Parser as _;
use sutazai_cli::Cli;

/// mimalloc: messages on the bus are allocated on one thread and freed on another, which
/// glibc's allocator serialises on an arena lock (see BENCHMARKS.md, message bus).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    sutazai_cli::main_with(Cli::parse())
}
