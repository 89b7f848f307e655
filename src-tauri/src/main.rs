//! Entry point of the `sutazai` binary: one program for the desktop and for machines
//! without a display.
//!
//! With a subcommand (`serve`, `task …`, `agents …`, `models …`, `doctor`) it is the
//! command line of `sutazai-cli`; without one it opens the desktop dashboard, with the
//! orchestrator and API running inside the same process.

// Release builds on Windows are GUI programs: no console window behind the dashboard.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod desktop;
mod notify;
mod tray;

use clap::Parser;

/// mimalloc: messages on the bus are allocated on one thread and freed on another, which
/// glibc's allocator serialises on an arena lock (see BENCHMARKS.md, message bus).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = sutazai_cli::Cli::parse();
    if cli.command.is_some() {
        return sutazai_cli::main_with(cli);
    }
    desktop::run(cli.config.as_deref())
}
