//! Entry point of the `sutazai` binary.
//!
//! Today it opens the desktop dashboard; the headless commands (`sutazai serve`,
//! `sutazai task ...`, `sutazai doctor`) are dispatched here through `sutazai-cli` so one
//! binary serves both the desktop and machines without a display.

// Release builds on Windows are GUI programs: no console window behind the dashboard.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod desktop;

fn main() -> anyhow::Result<()> {
    desktop::run()
}
