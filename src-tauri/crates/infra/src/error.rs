//! Infrastructure errors, each with a stable code for `{code, message}` answers.

/// What went wrong managing the infrastructure.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum InfraError {
    /// The Docker engine cannot be reached (no socket, daemon down, permission denied).
    #[error("Docker is unavailable: {reason}. {hint}")]
    Unavailable {
        /// Why, as Docker's client reported it.
        reason: String,
        /// What the user can do about it.
        hint: String,
    },
    /// No such service in the catalogue.
    #[error("no service named {0:?} in the catalogue")]
    UnknownService(String),
    /// No such managed container.
    #[error("no managed container {0:?}")]
    UnknownContainer(String),
    /// A request that cannot be carried out as asked.
    #[error("{0}")]
    Invalid(String),
    /// A catalogue file or a service definition is wrong.
    #[error("catalogue ({origin}): {reason}")]
    Catalogue {
        /// The file (or "built-in …").
        origin: String,
        /// What is wrong, field first.
        reason: String,
    },
    /// A service did not become healthy in time.
    #[error("{service} did not become healthy within {seconds} s: {detail}")]
    Unhealthy {
        /// The service.
        service: String,
        /// How long was waited.
        seconds: u64,
        /// The last state or health output seen.
        detail: String,
    },
    /// Pulling an image (or a model) failed.
    #[error("pulling {what} failed: {reason}")]
    Pull {
        /// Image or model reference.
        what: String,
        /// Docker's or Ollama's message.
        reason: String,
    },
    /// Something in the way: a container or volume of that name that is not ours, a
    /// container in a state that does not allow the operation.
    #[error("{0}")]
    Conflict(String),
    /// The Docker engine refused or failed a request.
    #[error("Docker: {0}")]
    Docker(String),
}

impl InfraError {
    /// The stable snake-case code.
    pub fn code(&self) -> &'static str {
        match self {
            InfraError::Unavailable { .. } => "docker_unavailable",
            InfraError::UnknownService(_) => "unknown_service",
            InfraError::UnknownContainer(_) => "unknown_container",
            InfraError::Invalid(_) => "invalid_request",
            InfraError::Catalogue { .. } => "invalid_catalogue",
            InfraError::Unhealthy { .. } => "service_unhealthy",
            InfraError::Pull { .. } => "pull_failed",
            InfraError::Conflict(_) => "conflict",
            InfraError::Docker(_) => "docker_error",
        }
    }
}
