//! The desktop shell: runs the orchestrator and API in this process and opens the
//! SutazAI dashboard in a native window.
//!
//! The dashboard (`ui/dist`, embedded into the binary by `tauri::generate_context!`) is a
//! static page that talks to the orchestration API over HTTP, exactly as it does when
//! `sutazai serve` hands it to a browser. The shell starts that API on the settings'
//! address (`ORCHESTRATION_API_HOST`/`PORT`, the config file) with
//! [`sutazai_cli::serve::spawn_background`] on the one tokio runtime Tauri also uses, tells
//! the page where it listens (inside the webview the page's own origin is not the API),
//! and stops it — leaving unfinished tasks resumable — when the last window closes.

use std::ffi::OsStr;
use std::path::Path;

use anyhow::{Context as _, bail};
use sutazai_cli::settings::Settings;
use tauri::{AppHandle, WebviewWindowBuilder};

/// Label of the dashboard window in `tauri.conf.json` (declared with `create: false` so it
/// is built here, where the API address can be injected before the page loads).
const MAIN_WINDOW: &str = "main";

/// Runs the desktop app until its last window closes.
pub fn run(config: Option<&Path>) -> anyhow::Result<()> {
    // GTK would abort the process with a panic deep inside the windowing code instead.
    if cfg!(all(unix, not(target_os = "macos")))
        && !has_display(
            std::env::var_os("DISPLAY").as_deref(),
            std::env::var_os("WAYLAND_DISPLAY").as_deref(),
        )
    {
        bail!(
            "no display to open the desktop window on (DISPLAY and WAYLAND_DISPLAY are unset); \
             run `sutazai serve` for the headless server and its dashboard"
        );
    }
    let settings = Settings::load(config).context("loading settings")?;
    sutazai_cli::init_tracing(&settings.log_level);

    // One runtime for the server and for Tauri's async work.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sutazai")
        .build()
        .context("starting the tokio runtime")?;
    tauri::async_runtime::set(runtime.handle().clone());
    let server = {
        let _guard = runtime.enter();
        sutazai_cli::serve::spawn_background(settings)
            .context("starting the orchestration API for the dashboard")?
    };
    let api = server.url().to_owned();
    tracing::info!(%api, "orchestration API started for the desktop window");

    let result = tauri::Builder::default()
        .setup(move |app| {
            open_dashboard(app.handle(), &api)?;
            Ok(())
        })
        .run(tauri::generate_context!())
        .context("running the desktop app");
    if let Err(e) = runtime.block_on(server.stop()) {
        tracing::error!("stopping the orchestration API: {e:#}");
    }
    result
}

/// Opens the dashboard window from its `tauri.conf.json` description, with the API base URL
/// set as `window.SUTAZAI_API` before any of the page's scripts run.
fn open_dashboard(app: &AppHandle, api: &str) -> anyhow::Result<()> {
    let config = app
        .config()
        .app
        .windows
        .iter()
        .find(|window| window.label == MAIN_WINDOW)
        .with_context(|| format!("tauri.conf.json declares no window labelled {MAIN_WINDOW:?}"))?;
    WebviewWindowBuilder::from_config(app, config)
        .context("reading the dashboard window configuration")?
        .initialization_script(api_init_script(api)?)
        .build()
        .context("opening the dashboard window")?;
    Ok(())
}

/// The script that hands the API address to the page; the URL goes through JSON encoding so
/// no configured value can break out of the string literal.
fn api_init_script(api: &str) -> anyhow::Result<String> {
    let literal = serde_json::to_string(api).context("encoding the API base URL")?;
    Ok(format!("window.SUTAZAI_API = {literal};"))
}

/// Whether an X11 or Wayland display is named, so GTK can open a window; an empty variable
/// names none.
fn has_display(x11: Option<&OsStr>, wayland: Option<&OsStr>) -> bool {
    [x11, wayland]
        .into_iter()
        .flatten()
        .any(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_display_needs_a_non_empty_name() {
        let name = OsStr::new(":0");
        let empty = OsStr::new("");
        assert!(has_display(Some(name), None));
        assert!(has_display(None, Some(OsStr::new("wayland-0"))));
        assert!(has_display(Some(empty), Some(name)));
        assert!(!has_display(None, None));
        assert!(!has_display(Some(empty), Some(empty)));
    }

    #[test]
    fn init_script_quotes_the_url() {
        assert_eq!(
            api_init_script("http://127.0.0.1:8000").unwrap(),
            r#"window.SUTAZAI_API = "http://127.0.0.1:8000";"#
        );
        assert_eq!(
            api_init_script(r#"x";alert(1);//"#).unwrap(),
            r#"window.SUTAZAI_API = "x\";alert(1);//";"#
        );
    }
}
