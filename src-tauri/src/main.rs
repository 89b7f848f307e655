//! Entry point of the `sutazai` binary.
//!
//! For now it only opens the desktop dashboard. The headless commands (`sutazai serve`,
//! `sutazai task ...`, `sutazai doctor`) are to be dispatched from here through
//! `sutazai-cli`, so that one binary serves both the desktop and machines without a display.

// Release builds on Windows are GUI programs: no console window behind the dashboard.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod desktop;

fn main() -> anyhow::Result<()> {
    desktop::run()
}
