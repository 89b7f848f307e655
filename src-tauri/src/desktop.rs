//! The desktop shell: opens the SutazAI dashboard in a native window.
//!
//! The dashboard (`ui/dist`, embedded into the binary by `tauri::generate_context!`) is a
//! static page that talks to the orchestration API over HTTP, exactly as it does when
//! `sutazai serve` hands it to a browser. So the shell's job is small: open the window
//! described in `tauri.conf.json` and tell the page where the API listens, because inside
//! the webview the page's own origin (`tauri://localhost`) is not the API.

use anyhow::{Context as _, bail};
use tauri::{AppHandle, WebviewWindowBuilder};

/// Label of the dashboard window in `tauri.conf.json` (declared with `create: false` so it
/// is built here, where the API address can be injected before the page loads).
const MAIN_WINDOW: &str = "main";

/// Host the API binds when `ORCHESTRATION_API_HOST` is unset (the spec's default).
const DEFAULT_HOST: &str = "127.0.0.1";

/// Port the API binds when `ORCHESTRATION_API_PORT` is unset (the spec's default).
const DEFAULT_PORT: u16 = 8000;

/// Runs the desktop app until its last window closes.
///
/// Reads the API address from the same variables `sutazai serve` binds to, so the window
/// and the server agree without further configuration.
pub fn run() -> anyhow::Result<()> {
    let host = env_var("ORCHESTRATION_API_HOST")?;
    let port = env_var("ORCHESTRATION_API_PORT")?;
    let api = api_base_url(host.as_deref(), port.as_deref())?;
    tauri::Builder::default()
        .setup(move |app| {
            open_dashboard(app.handle(), &api)?;
            Ok(())
        })
        .run(tauri::generate_context!())
        .context("running the desktop app")
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

/// Reads an environment variable, treating an empty value as unset.
fn env_var(name: &str) -> anyhow::Result<Option<String>> {
    match std::env::var(name) {
        Ok(value) if value.trim().is_empty() => Ok(None),
        Ok(value) => Ok(Some(value.trim().to_owned())),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => bail!("{name} is not valid UTF-8"),
    }
}

/// The URL the dashboard should call, from the host and port the API binds.
///
/// A wildcard bind address (`0.0.0.0`, `::`) is where the server listens, not where a client
/// can connect, so it maps to the matching loopback address; IPv6 literals get brackets.
fn api_base_url(host: Option<&str>, port: Option<&str>) -> anyhow::Result<String> {
    let port = match port {
        None => DEFAULT_PORT,
        Some(text) => match text.parse::<u16>() {
            Ok(0) | Err(_) => {
                bail!("ORCHESTRATION_API_PORT must be a port number from 1 to 65535, got {text:?}")
            }
            Ok(port) => port,
        },
    };
    let host = match host.map(|h| h.trim_start_matches('[').trim_end_matches(']')) {
        None | Some("0.0.0.0") => DEFAULT_HOST.to_owned(),
        Some("::") => "[::1]".to_owned(),
        Some(h) if h.contains(':') => format!("[{h}]"),
        Some(h) if h.is_empty() || h.contains(['/', '?', '#', '@', ' ']) => {
            bail!("ORCHESTRATION_API_HOST must be a host name or IP address, got {h:?}")
        }
        Some(h) => h.to_owned(),
    };
    Ok(format!("http://{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_the_spec_address() {
        assert_eq!(api_base_url(None, None).unwrap(), "http://127.0.0.1:8000");
    }

    #[test]
    fn uses_the_configured_host_and_port() {
        assert_eq!(
            api_base_url(Some("localhost"), Some("9100")).unwrap(),
            "http://localhost:9100"
        );
        assert_eq!(
            api_base_url(Some("10.0.0.5"), None).unwrap(),
            "http://10.0.0.5:8000"
        );
    }

    #[test]
    fn wildcard_binds_map_to_loopback() {
        assert_eq!(
            api_base_url(Some("0.0.0.0"), Some("8001")).unwrap(),
            "http://127.0.0.1:8001"
        );
        assert_eq!(api_base_url(Some("::"), None).unwrap(), "http://[::1]:8000");
        assert_eq!(
            api_base_url(Some("[::]"), None).unwrap(),
            "http://[::1]:8000"
        );
    }

    #[test]
    fn ipv6_literals_get_brackets_once() {
        assert_eq!(
            api_base_url(Some("::1"), None).unwrap(),
            "http://[::1]:8000"
        );
        assert_eq!(
            api_base_url(Some("[fe80::1]"), Some("1")).unwrap(),
            "http://[fe80::1]:1"
        );
    }

    #[test]
    fn rejects_bad_ports_and_hosts() {
        for port in ["0", "65536", "http", "-1", "80.5"] {
            let err = api_base_url(None, Some(port)).unwrap_err().to_string();
            assert!(err.contains("ORCHESTRATION_API_PORT"), "{port}: {err}");
        }
        for host in ["a/b", "user@host", "x y", "[]"] {
            let err = api_base_url(Some(host), None).unwrap_err().to_string();
            assert!(err.contains("ORCHESTRATION_API_HOST"), "{host}: {err}");
        }
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
