//! The desktop shell: runs the orchestrator and API in this process and opens the
//! SutazAI dashboard in a native window.
//!
//! The dashboard (`ui/dist`, embedded into the binary by `tauri::generate_context!`) is a
//! static page that talks to the orchestration API over HTTP, exactly as it does when
//! `sutazai serve` hands it to a browser. The shell starts that API on the settings'
//! address (`ORCHESTRATION_API_HOST`/`PORT`, the config file) with
//! [`sutazai_cli::serve::spawn_background`] on the one tokio runtime Tauri also uses, tells
//! the page where it listens (inside the webview the page's own origin is not the API),
//! and stops it — leaving unfinished tasks resumable — when the app quits.
//!
//! Around the window: a tray icon showing the health with its menu ([`crate::tray`]);
//! native notifications for alerts, long tasks and approvals ([`crate::notify`]), a click
//! opening the matching view; a single instance (a second launch focuses the first
//! window); start at login as a user setting (the tray's check item); closing the window
//! keeps the app in the tray (where there is one).

use std::ffi::OsStr;
use std::path::Path;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use anyhow::{Context as _, bail};
use sutazai_cli::settings::Settings;
use sutazai_cli::{BackgroundServer, Core, Embedding};
use tauri::{AppHandle, Manager, RunEvent, WebviewWindowBuilder, WindowEvent};
use tokio_util::sync::CancellationToken;

use crate::notify::Desktop;

/// Label of the dashboard window in `tauri.conf.json` (declared with `create: false` so it
/// is built here, where the API address can be injected before the page loads).
pub const MAIN_WINDOW: &str = "main";

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
    let stop = CancellationToken::new();
    let (desktop, mut clicks) = Desktop::new();
    let core: Arc<OnceLock<Core>> = Arc::default();
    let embedding = Embedding {
        notifiers: vec![Arc::new(desktop.clone())],
        on_ready: Some(Box::new({
            let core = core.clone();
            let stop = stop.clone();
            move |ready: Core| {
                desktop.watch_tasks(&ready.orchestrator, stop);
                let _ = core.set(ready);
            }
        })),
    };
    // The server starts in `setup`, after the single-instance check: a second launch must
    // hand over to the first before it tries to bind the first one's port.
    let server: Arc<Mutex<Option<BackgroundServer>>> = Arc::default();
    let mut embedding = Some(embedding);
    let mut settings = Some(settings);
    let has_tray = Arc::new(AtomicBool::new(false));
    let app = tauri::Builder::default()
        // First, so a second launch hands over before anything else starts.
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            tracing::info!("a second launch: focusing the running app");
            crate::tray::show_dashboard(app);
        }))
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            None,
        ))
        .setup({
            let has_tray = has_tray.clone();
            let stop = stop.clone();
            let server = server.clone();
            let runtime = runtime.handle().clone();
            move |app| {
                let (Some(settings), Some(embedding)) = (settings.take(), embedding.take()) else {
                    return Err("the desktop app was set up twice".into());
                };
                // Before the server starts: with authentication on, the window's session
                // is signed with the secret the server then loads.
                let session = sutazai_cli::serve::local_session(&settings, "desktop")
                    .context("signing the dashboard window in")?;
                let started = {
                    let _guard = runtime.enter();
                    sutazai_cli::serve::spawn_background(settings, embedding)
                        .context("starting the orchestration API for the dashboard")?
                };
                let api = started.url().to_owned();
                tracing::info!(%api, "orchestration API started for the desktop window");
                *server.lock().unwrap_or_else(PoisonError::into_inner) = Some(started);
                open_dashboard(app.handle(), &api, session.as_ref())?;
                let alive: crate::tray::Alive = {
                    let server = server.clone();
                    Arc::new(move || {
                        server
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .as_ref()
                            .is_some_and(|s| !s.is_finished())
                    })
                };
                has_tray.store(
                    crate::tray::install(app.handle(), core, alive, stop.clone()),
                    Ordering::SeqCst,
                );
                // SIGTERM / Ctrl-C (logout, `kill`) quit like the tray's Quit: gracefully.
                let quitting = app.handle().clone();
                tauri::async_runtime::spawn(async move {
                    sutazai_cli::serve::shutdown_signal().await;
                    tracing::info!("signal received: quitting");
                    quitting.exit(0);
                });
                // A click on a notification opens its view.
                let handle = app.handle().clone();
                tauri::async_runtime::spawn(async move {
                    loop {
                        let route = tokio::select! {
                            () = stop.cancelled() => return,
                            r = clicks.recv() => match r { Some(r) => r, None => return },
                        };
                        tracing::info!("notification clicked: opening the dashboard view {route}");
                        navigate(&handle, &route);
                    }
                });
                Ok(())
            }
        })
        .on_window_event(move |window, event| {
            // With a tray, closing the window only hides it; the app lives on in the tray.
            if let WindowEvent::CloseRequested { api, .. } = event
                && window.label() == MAIN_WINDOW
                && has_tray.load(Ordering::SeqCst)
            {
                api.prevent_close();
                let _ = window.hide();
            }
        })
        .build(tauri::generate_context!())
        .context("building the desktop app")?;
    // The event loop ends the process itself once it exits (it never returns on some
    // platforms), so the server is stopped — in-flight tasks journaled as resumable —
    // from the loop's last event, before that happens.
    app.run(move |_app, event| {
        if let RunEvent::Exit = event
            && let Some(server) = server.lock().unwrap_or_else(PoisonError::into_inner).take()
        {
            stop.cancel();
            tracing::info!("quitting: stopping the orchestration API");
            if let Err(e) = runtime.block_on(server.stop()) {
                tracing::error!("stopping the orchestration API: {e:#}");
            }
        }
    });
    Ok(())
}

/// Shows the dashboard on `route` (`#/alerts`, `#/tasks/ID`).
fn navigate(app: &AppHandle, route: &str) {
    crate::tray::show_dashboard(app);
    let (Some(window), Ok(literal)) = (
        app.get_webview_window(MAIN_WINDOW),
        serde_json::to_string(route),
    ) else {
        return;
    };
    if let Err(e) = window.eval(format!("window.location.hash = {literal};")) {
        tracing::warn!(error = %e, "could not open the dashboard view {route}");
    }
}

/// Opens the dashboard window from its `tauri.conf.json` description, with the API base URL
/// set as `window.SUTAZAI_API` before any of the page's scripts run.
fn open_dashboard(
    app: &AppHandle,
    api: &str,
    session: Option<&sutazai_auth::TokenPair>,
) -> anyhow::Result<()> {
    let config = app
        .config()
        .app
        .windows
        .iter()
        .find(|window| window.label == MAIN_WINDOW)
        .with_context(|| format!("tauri.conf.json declares no window labelled {MAIN_WINDOW:?}"))?;
    let window = WebviewWindowBuilder::from_config(app, config)
        .context("reading the dashboard window configuration")?
        .initialization_script(api_init_script(api, session)?)
        .build()
        .context("opening the dashboard window")?;
    lighten_webview(&window);
    Ok(())
}

/// Settings that keep the resident dashboard cheap: it is a few panels and charts, not a
/// game, so WebKit paints it without accelerated compositing (whose layer buffers and
/// per-frame compositing, done in software where there is no GPU, cost ~150 MiB and most
/// of the idle CPU: see BENCHMARKS.md), and caches as a document viewer (every resource
/// is local; there is nothing worth keeping for a next page). `SUTAZAI_WEBVIEW_GPU=1`
/// keeps WebKit's own choice.
#[cfg(target_os = "linux")]
fn lighten_webview(window: &tauri::WebviewWindow) {
    if std::env::var_os("SUTAZAI_WEBVIEW_GPU").is_some_and(|v| v == "1") {
        return;
    }
    let applied = window.with_webview(|webview| {
        use webkit2gtk::{
            CacheModel, HardwareAccelerationPolicy, SettingsExt, WebContextExt, WebViewExt,
        };
        let view = webview.inner();
        if let Some(settings) = WebViewExt::settings(&view) {
            settings.set_hardware_acceleration_policy(HardwareAccelerationPolicy::Never);
        }
        if let Some(context) = view.context() {
            context.set_cache_model(CacheModel::DocumentViewer);
        }
    });
    if let Err(e) = applied {
        tracing::warn!(error = %e, "could not adjust the dashboard's webview settings");
    }
}

#[cfg(not(target_os = "linux"))]
fn lighten_webview(_window: &tauri::WebviewWindow) {}

/// The script that hands the API address to the page; the URL goes through JSON encoding so
/// no configured value can break out of the string literal.
/// With authentication on, the window also gets a session (`window.SUTAZAI_AUTH`): the
/// person at this desktop owns the machine, so the app signs its own window in as admin.
fn api_init_script(api: &str, session: Option<&sutazai_auth::TokenPair>) -> anyhow::Result<String> {
    let literal = serde_json::to_string(api).context("encoding the API base URL")?;
    let mut script = format!("window.SUTAZAI_API = {literal};");
    if let Some(session) = session {
        let auth = serde_json::json!({
            "access_token": session.access_token,
            "refresh_token": session.refresh_token,
            "expires_in": session.expires_in,
        });
        // Only on the app's own pages (the custom protocol: `tauri://localhost`, or
        // `http(s)://tauri.localhost` on Windows): initialisation scripts run on every page
        // the window loads, and no other page may get the session.
        script.push_str(&format!(
            " if ((location.protocol === \"tauri:\" && location.host === \"localhost\") || \
             location.hostname === \"tauri.localhost\") {{ window.SUTAZAI_AUTH = {auth}; }}"
        ));
    }
    Ok(script)
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
            api_init_script("http://127.0.0.1:8000", None).unwrap(),
            r#"window.SUTAZAI_API = "http://127.0.0.1:8000";"#
        );
        assert_eq!(
            api_init_script(r#"x";alert(1);//"#, None).unwrap(),
            r#"window.SUTAZAI_API = "x\";alert(1);//";"#
        );
    }

    #[test]
    fn the_session_is_given_to_the_apps_own_pages_only() {
        let tokens = sutazai_auth::Tokens::new(
            &[3; 32],
            std::time::Duration::from_secs(60),
            std::time::Duration::from_secs(600),
        )
        .unwrap();
        let session = tokens
            .issue("desktop", sutazai_auth::Role::Admin, None)
            .unwrap();
        let script = api_init_script("http://127.0.0.1:8000", Some(&session)).unwrap();
        let guard = r#"if ((location.protocol === "tauri:" && location.host === "localhost") || location.hostname === "tauri.localhost") { window.SUTAZAI_AUTH = "#;
        assert!(script.contains(guard), "{script}");
        assert_eq!(script.matches(&session.access_token).count(), 1);
        assert!(!script[..script.find(guard).unwrap()].contains(&session.refresh_token));
    }
}
