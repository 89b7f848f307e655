//! The tray icon: its colour shows the overall health (green healthy, amber degraded, red
//! down), its tooltip says why, and its menu opens the dashboard, shows the active tasks,
//! deploys all services, starts and stops each managed service, pauses and resumes
//! orchestration, turns "start at login" on and off, and quits.
//!
//! Where no tray host runs (a bare X server, some Wayland desktops) the icon simply is not
//! shown; the app keeps working, and closing the window then quits instead of hiding.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sutazai_cli::Core;
use sutazai_infra::Action;
use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Wry};
use tauri_plugin_autostart::ManagerExt as _;
use tokio_util::sync::CancellationToken;

/// Between refreshes of the icon, tooltip and task count.
const REFRESH: Duration = Duration::from_secs(2);
/// Side of the generated icons, pixels.
const ICON: u32 = 32;

/// What the icon shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrayHealth {
    /// Everything answers, no alert fires.
    Healthy,
    /// Some alert fires or some agent is degraded.
    Degraded,
    /// The server stopped, a critical alert fires unheeded, or no agent is healthy.
    Down,
}

/// The running figures the health is judged from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    /// The server task still runs.
    pub running: bool,
    /// Alerts firing.
    pub firing: usize,
    /// Critical alerts firing and not acknowledged.
    pub critical_unheeded: usize,
    /// Healthy agents.
    pub agents_healthy: usize,
    /// All agents.
    pub agents_total: usize,
}

/// The health and the tooltip line for `f`.
pub fn judge(f: Figures) -> (TrayHealth, String) {
    if !f.running {
        return (TrayHealth::Down, "SutazAI — the server stopped".into());
    }
    if f.critical_unheeded > 0 {
        return (
            TrayHealth::Down,
            format!("SutazAI — {} critical alert(s) firing", f.critical_unheeded),
        );
    }
    if f.agents_total > 0 && f.agents_healthy == 0 {
        return (TrayHealth::Down, "SutazAI — no agent is healthy".into());
    }
    if f.firing > 0 || f.agents_healthy < f.agents_total {
        return (
            TrayHealth::Degraded,
            format!(
                "SutazAI — {} alert(s) firing, {} of {} agents healthy",
                f.firing, f.agents_healthy, f.agents_total
            ),
        );
    }
    (
        TrayHealth::Healthy,
        format!("SutazAI — healthy ({} agents)", f.agents_total),
    )
}

/// A round icon in the health's colour (RGBA, anti-aliased edge, darker rim).
pub fn icon_rgba(health: TrayHealth) -> Vec<u8> {
    let (r, g, b) = match health {
        TrayHealth::Healthy => (0x22, 0xc5, 0x5e),
        TrayHealth::Degraded => (0xf5, 0x9e, 0x0b),
        TrayHealth::Down => (0xef, 0x44, 0x44),
    };
    let mut out = Vec::with_capacity((ICON * ICON * 4) as usize);
    let c = (ICON as f64 - 1.0) / 2.0;
    let radius = ICON as f64 / 2.0 - 1.0;
    for y in 0..ICON {
        for x in 0..ICON {
            let d = ((x as f64 - c).powi(2) + (y as f64 - c).powi(2)).sqrt();
            let alpha = (radius - d + 0.5).clamp(0.0, 1.0);
            // The outer 3 px are a darker rim so the icon reads on light and dark panels.
            let shade = if d > radius - 3.0 { 0.7 } else { 1.0 };
            let px = |v: u8| (f64::from(v) * shade).round() as u8;
            out.extend_from_slice(&[px(r), px(g), px(b), (alpha * 255.0).round() as u8]);
        }
    }
    out
}

fn icon(health: TrayHealth) -> Image<'static> {
    Image::new_owned(icon_rgba(health), ICON, ICON)
}

/// Shows, unminimises and focuses the dashboard window.
pub fn show_dashboard(app: &AppHandle) {
    if let Some(window) = app.get_webview_window(crate::desktop::MAIN_WINDOW) {
        let _ = window.show();
        let _ = window.unminimize();
        let _ = window.set_focus();
    }
}

/// Whether the server task still runs.
pub type Alive = Arc<dyn Fn() -> bool + Send + Sync>;

/// Builds the tray; returns whether it was created (the app must not hide its only window
/// where it was not). `core` is filled once the server is up; `alive` tells whether the
/// server still runs (it can fail after binding: data directory locked, journal broken).
pub fn install(
    app: &AppHandle,
    core: Arc<OnceLock<Core>>,
    alive: Alive,
    stop: CancellationToken,
) -> bool {
    match build(app, core, alive, stop) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "no tray icon; closing the window will quit the app");
            false
        }
    }
}

fn build(
    app: &AppHandle,
    core: Arc<OnceLock<Core>>,
    alive: Alive,
    stop: CancellationToken,
) -> tauri::Result<()> {
    let open = MenuItem::with_id(app, "open", "Open dashboard", true, None::<&str>)?;
    let tasks = MenuItem::with_id(app, "tasks", "Active tasks: 0", false, None::<&str>)?;
    let deploy = MenuItem::with_id(app, "deploy", "Deploy all services", true, None::<&str>)?;
    let services = Submenu::with_id(app, "services", "Services", true)?;
    let pause = CheckMenuItem::with_id(
        app,
        "pause",
        "Pause orchestration",
        true,
        false,
        None::<&str>,
    )?;
    let autostart_on = app.autolaunch().is_enabled().unwrap_or(false);
    let autostart = CheckMenuItem::with_id(
        app,
        "autostart",
        "Start at login",
        true,
        autostart_on,
        None::<&str>,
    )?;
    let quit = MenuItem::with_id(app, "quit", "Quit SutazAI", true, None::<&str>)?;
    let menu = Menu::with_items(
        app,
        &[
            &open,
            &tasks,
            &PredefinedMenuItem::separator(app)?,
            &deploy,
            &services,
            &pause,
            &PredefinedMenuItem::separator(app)?,
            &autostart,
            &quit,
        ],
    )?;
    let actions = core.clone();
    let pause_item = pause.clone();
    let autostart_item = autostart.clone();
    let tray = TrayIconBuilder::with_id("main")
        // Neutral until the core reports: the first refresh sets the real health.
        .icon(icon(TrayHealth::Healthy))
        .tooltip("SutazAI — starting")
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(move |app, event| {
            on_menu(
                app,
                event.id().as_ref(),
                &actions,
                &pause_item,
                &autostart_item,
            );
        })
        .build(app)?;

    // Keeps icon, tooltip, task count and the pause tick in step with the core.
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let mut shown: Option<TrayHealth> = None;
        let mut listed_services = false;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(REFRESH) => {}
            }
            let running = alive();
            let Some(core) = core.get() else {
                if !running && shown != Some(TrayHealth::Down) {
                    let (health, tooltip) = judge(Figures {
                        running,
                        firing: 0,
                        critical_unheeded: 0,
                        agents_healthy: 0,
                        agents_total: 0,
                    });
                    let _ = tray.set_icon(Some(icon(health)));
                    let _ = tray.set_tooltip(Some(&tooltip));
                    shown = Some(health);
                }
                continue;
            };
            if !listed_services {
                listed_services = true;
                for spec in core.infra.catalogue().services() {
                    let name = &spec.name;
                    for (verb, label) in [("start", "Start"), ("stop", "Stop")] {
                        if let Ok(item) = MenuItem::with_id(
                            &app,
                            format!("service:{verb}:{name}"),
                            format!("{label} {name}"),
                            true,
                            None::<&str>,
                        ) {
                            let _ = services.append(&item);
                        }
                    }
                }
            }
            let stats = core.orchestrator.stats();
            let (firing, _, unheeded) = core.monitor.firing_summary();
            let (health, tooltip) = judge(Figures {
                running,
                firing,
                critical_unheeded: unheeded,
                agents_healthy: stats.agents_healthy,
                agents_total: stats.agents_total,
            });
            if shown != Some(health) {
                let _ = tray.set_icon(Some(icon(health)));
                shown = Some(health);
            }
            let _ = tray.set_tooltip(Some(&tooltip));
            let _ = tasks.set_text(format!(
                "Active tasks: {} ({} queued)",
                stats.active_tasks, stats.queued_tasks
            ));
            let _ = pause.set_checked(stats.paused);
        }
    });
    Ok(())
}

fn on_menu(
    app: &AppHandle,
    id: &str,
    core: &Arc<OnceLock<Core>>,
    pause: &CheckMenuItem<Wry>,
    autostart: &CheckMenuItem<Wry>,
) {
    match id {
        "open" => show_dashboard(app),
        "quit" => app.exit(0),
        "autostart" => {
            let launcher = app.autolaunch();
            let on = launcher.is_enabled().unwrap_or(false);
            let outcome = if on {
                launcher.disable()
            } else {
                launcher.enable()
            };
            match outcome {
                Ok(()) => tracing::info!(enabled = !on, "start at login changed"),
                Err(e) => tracing::error!(error = %e, "could not change start at login"),
            }
            let _ = autostart.set_checked(launcher.is_enabled().unwrap_or(on));
        }
        other => {
            let Some(core) = core.get().cloned() else {
                tracing::info!(
                    item = other,
                    "the core is still starting; menu item ignored"
                );
                return;
            };
            match other {
                "pause" => {
                    let paused = !core.orchestrator.is_paused();
                    core.orchestrator.set_paused(paused);
                    let _ = pause.set_checked(paused);
                }
                "deploy" => {
                    tauri::async_runtime::spawn(async move {
                        match core.infra.deploy_all().await {
                            Ok(report) => tracing::info!(
                                services = ?report.services,
                                seconds = report.seconds,
                                "deploy-all from the tray finished"
                            ),
                            Err(e) => {
                                tracing::error!(error = %e, "deploy-all from the tray failed")
                            }
                        }
                    });
                }
                service if service.starts_with("service:") => {
                    let mut parts = service.splitn(3, ':').skip(1);
                    let (Some(verb), Some(name)) = (parts.next(), parts.next()) else {
                        return;
                    };
                    let action = if verb == "start" {
                        Action::Start
                    } else {
                        Action::Stop
                    };
                    let name = name.to_owned();
                    tauri::async_runtime::spawn(async move {
                        match core.infra.control(&name, action, None).await {
                            Ok(status) => tracing::info!(
                                service = %name,
                                state = %status.state,
                                "service changed from the tray"
                            ),
                            Err(e) => {
                                tracing::error!(service = %name, error = %e, "tray action failed")
                            }
                        }
                    });
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> Figures {
        Figures {
            running: true,
            firing: 0,
            critical_unheeded: 0,
            agents_healthy: 38,
            agents_total: 38,
        }
    }

    #[test]
    fn health_follows_alerts_agents_and_the_server() {
        assert_eq!(
            judge(figures()),
            (TrayHealth::Healthy, "SutazAI — healthy (38 agents)".into())
        );
        let one_alert = Figures {
            firing: 1,
            ..figures()
        };
        assert_eq!(judge(one_alert).0, TrayHealth::Degraded);
        let agent_down = Figures {
            agents_healthy: 37,
            ..figures()
        };
        assert_eq!(
            judge(agent_down).1,
            "SutazAI — 0 alert(s) firing, 37 of 38 agents healthy"
        );
        let critical = Figures {
            firing: 2,
            critical_unheeded: 1,
            ..figures()
        };
        assert_eq!(judge(critical).0, TrayHealth::Down);
        assert_eq!(
            judge(Figures {
                running: false,
                ..figures()
            })
            .0,
            TrayHealth::Down
        );
        assert_eq!(
            judge(Figures {
                agents_healthy: 0,
                ..figures()
            })
            .0,
            TrayHealth::Down
        );
    }

    #[test]
    fn icons_are_round_and_coloured_by_health() {
        let green = icon_rgba(TrayHealth::Healthy);
        assert_eq!(green.len(), (ICON * ICON * 4) as usize);
        let px = |img: &[u8], x: u32, y: u32| {
            let i = ((y * ICON + x) * 4) as usize;
            [img[i], img[i + 1], img[i + 2], img[i + 3]]
        };
        assert_eq!(px(&green, 0, 0)[3], 0, "corners are transparent");
        assert_eq!(px(&green, 16, 16), [0x22, 0xc5, 0x5e, 255]);
        assert_eq!(
            px(&icon_rgba(TrayHealth::Down), 16, 16),
            [0xef, 0x44, 0x44, 255]
        );
        assert_eq!(
            px(&icon_rgba(TrayHealth::Degraded), 16, 16)[..3],
            [0xf5, 0x9e, 0x0b]
        );
    }
}
