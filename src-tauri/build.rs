//! Build script of the desktop app: runs tauri-build over the root `tauri.conf.json`.
//!
//! The app package's manifest sits at the repository root (beside `tauri.conf.json`) while
//! its sources live in `src-tauri/`, so the capabilities directory is named explicitly:
//! tauri-build would otherwise look for `./capabilities` at the root.

use std::path::Path;

/// Where `npm run build` in `ui/` writes the dashboard that the binary embeds.
const FRONTEND_DIST: &str = "ui/dist";

/// The capability files granting the dashboard window its permissions.
const CAPABILITIES_DIR: &str = "src-tauri/capabilities";

fn main() {
    // generate_context!() embeds ui/dist at compile time and panics deep inside a macro
    // when it is missing; say what to run instead.
    if !Path::new(FRONTEND_DIST).join("index.html").is_file() {
        println!(
            "cargo::error={FRONTEND_DIST}/index.html is missing: build the dashboard first \
             with `npm --prefix ui ci && npm --prefix ui run build` (scripts/setup.sh installs \
             the packages)"
        );
        return;
    }
    println!("cargo::rerun-if-changed={CAPABILITIES_DIR}");
    let attributes =
        tauri_build::Attributes::new().capabilities_path_pattern("./src-tauri/capabilities/**/*");
    if let Err(error) = tauri_build::try_build(attributes) {
        println!("cargo::error=tauri-build failed: {error:#}");
    }
}
