//! The connection to the Docker engine and what its errors mean for users.
//!
//! `DOCKER_HOST` is honoured (`unix://…`, `tcp://…`), the platform's socket otherwise.
//! bollard 0.21 sends unversioned requests, so the daemon answers with its own API version
//! and older engines work. Errors that mean "no
//! engine to talk to" (no socket, refused, permission denied, timeouts) become
//! [`InfraError::Unavailable`] with a hint; answers from the engine stay
//! [`InfraError::Docker`] (or a not-found the caller maps).

use bollard::Docker;
use bollard::errors::Error as DockerError;
use chrono::Utc;

use crate::error::InfraError;
use crate::model::Availability;

/// Seconds a request may take before the engine counts as unavailable.
const TIMEOUT_SECS: u64 = 30;

/// Where the engine is looked for.
pub(crate) fn describe_host(host: Option<&str>) -> String {
    host.map(str::to_owned)
        .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned())
}

/// A client for `host` (or `DOCKER_HOST`, or the default socket), version negotiated.
pub(crate) async fn connect(host: Option<&str>) -> Result<(Docker, String), InfraError> {
    let where_ = describe_host(host);
    let docker = if where_.starts_with("unix://") {
        Docker::connect_with_unix(&where_, TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
    } else if where_.starts_with("tcp://") || where_.starts_with("http://") {
        Docker::connect_with_http(&where_, TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
    } else {
        return Err(InfraError::Unavailable {
            reason: format!("DOCKER_HOST {where_:?} is not a unix:// or tcp:// address"),
            hint: "Set DOCKER_HOST to unix:///var/run/docker.sock or tcp://HOST:2375.".into(),
        });
    }
    .map_err(|e| unavailable(&where_, &e))?;
    let version = docker
        .version()
        .await
        .map_err(|e| unavailable(&where_, &e))?
        .version
        .unwrap_or_else(|| "unknown".to_owned());
    Ok((docker, version))
}

/// The availability to report for a successful or failed connection.
pub(crate) fn availability(host: &str, outcome: &Result<String, InfraError>) -> Availability {
    let (available, version, reason, hint) = match outcome {
        Ok(version) => (true, Some(version.clone()), None, None),
        Err(InfraError::Unavailable { reason, hint }) => {
            (false, None, Some(reason.clone()), Some(hint.clone()))
        }
        Err(other) => (false, None, Some(other.to_string()), None),
    };
    Availability {
        available,
        docker_host: host.to_owned(),
        version,
        reason,
        hint,
        checked_at: Utc::now(),
    }
}

/// Whether `error` means the engine could not be reached at all (socket missing, connection
/// refused or reset, permission denied, no answer in time) rather than a failed request.
pub(crate) fn unreachable(error: &DockerError) -> bool {
    use std::io::ErrorKind;
    match error {
        DockerError::SocketNotFoundError(_) | DockerError::RequestTimeoutError => true,
        DockerError::HyperLegacyError { .. } | DockerError::IOError { .. } => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
            while let Some(e) = source {
                if let Some(io) = e.downcast_ref::<std::io::Error>() {
                    return matches!(
                        io.kind(),
                        ErrorKind::ConnectionRefused
                            | ErrorKind::ConnectionReset
                            | ErrorKind::ConnectionAborted
                            | ErrorKind::NotFound
                            | ErrorKind::PermissionDenied
                            | ErrorKind::BrokenPipe
                            | ErrorKind::TimedOut
                            | ErrorKind::NotConnected
                    );
                }
                source = e.source();
            }
            // A connection-level failure without an I/O cause (hyper's "Connect").
            matches!(error, DockerError::HyperLegacyError { .. })
        }
        _ => false,
    }
}

/// [`InfraError::Unavailable`] for an error talking to the engine at `host`, with a hint.
pub(crate) fn unavailable(host: &str, error: &DockerError) -> InfraError {
    // The useful part (refused, permission denied) is at the end of the source chain.
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    let mut root = None;
    while let Some(s) = source {
        root = Some(s.to_string());
        source = s.source();
    }
    if let Some(root) = root
        && !text.contains(&root)
    {
        text = format!("{root} ({text})");
    }
    let lower = text.to_lowercase();
    let hint = if lower.contains("permission denied") {
        "Add your user to the docker group (sudo usermod -aG docker $USER, then log in again) or run the app as a user that may use the socket."
    } else if lower.contains("no such file") || lower.contains("not found") {
        "Install Docker (e.g. apt-get install docker.io) and start it (systemctl start docker), or point DOCKER_HOST at a running engine."
    } else if lower.contains("refused") {
        "The Docker daemon is not running: start it (systemctl start docker or dockerd)."
    } else {
        "Check that the Docker daemon is running and that DOCKER_HOST points at it."
    };
    InfraError::Unavailable {
        reason: format!("cannot reach the Docker engine at {host}: {text}"),
        hint: hint.to_owned(),
    }
}

/// Maps an engine error: unreachable → unavailable, 404 → `not_found`, else `Docker`.
pub(crate) fn map_error(
    host: &str,
    error: DockerError,
    not_found: impl FnOnce() -> InfraError,
) -> InfraError {
    match &error {
        DockerError::DockerResponseServerError {
            status_code: 404, ..
        } => not_found(),
        DockerError::DockerResponseServerError {
            status_code: 409,
            message,
        } => InfraError::Conflict(message.clone()),
        DockerError::DockerResponseServerError {
            status_code: 400,
            message,
        } => InfraError::Invalid(message.clone()),
        DockerError::DockerResponseServerError { message, .. } => {
            InfraError::Docker(message.clone())
        }
        e if unreachable(e) => unavailable(host, e),
        other => InfraError::Docker(other.to_string()),
    }
}
