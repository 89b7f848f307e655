//! The agent registry: the built-in agents embedded in the binary, overlaid with the
//! user's agent files, and the lookups the orchestrator and the API need.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use include_dir::{Dir, include_dir};
use sutazai_core::AgentSpec;

use crate::error::AgentFileError;
use crate::parse::parse_agent_file;

/// The built-in agent files, compiled into the binary so a fresh install has all 38
/// agents without any file on disk to lose or corrupt.
static BUILTIN_DIR: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/builtin");

/// Prefix shown in error messages for built-in files, matching their place in the source
/// tree so a developer can find the broken one.
const BUILTIN_PREFIX: &str = "builtin";

/// Largest user agent file read; a valid file is a few kilobytes (the prompt is capped at
/// 8000 characters), so anything bigger is a mistake and is not worth reading into memory.
const MAX_USER_FILE_BYTES: u64 = 1024 * 1024;

/// The built-ins, parsed once per process: they never change at runtime, and parsing them
/// on every `Registry::builtin()` would repeat the same work and the same error logs.
static BUILTIN: LazyLock<(Registry, Vec<AgentFileError>)> = LazyLock::new(parse_builtin);

/// Where an agent's definition came from, so the dashboard can tell a user which agents
/// they changed and which file to edit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AgentSource {
    /// Shipped inside the binary.
    Builtin,
    /// Read from this file in the user's agent directory (it may override a built-in).
    User(PathBuf),
}

/// One registry entry: the spec and where it came from, kept together so they can never
/// disagree.
#[derive(Debug, Clone)]
struct Entry {
    spec: AgentSpec,
    source: AgentSource,
}

/// All agents known to this process, keyed by id.
///
/// A `BTreeMap` rather than a hash map so that listing order (API responses, the
/// dashboard, tie-breaks in agent selection) is stable by id across runs. Cloning copies
/// the specs; the registry is built once at startup and shared behind an `Arc` by
/// whoever needs it.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    agents: BTreeMap<String, Entry>,
}

impl Registry {
    /// The built-in agents alone.
    ///
    /// A built-in file that does not parse is a bug that the crate's tests catch; should
    /// one slip into a release anyway, it is logged at error level and skipped rather than
    /// taking the whole application down.
    pub fn builtin() -> Registry {
        BUILTIN.0.clone()
    }

    /// The built-in agents, then every `*.toml` file directly inside `user_dir`, which
    /// adds a new agent or replaces the built-in with the same id.
    ///
    /// Loading never fails as a whole: each bad file becomes one [`AgentFileError`] and is
    /// skipped, so a typo in one user file leaves every other agent working. A `user_dir`
    /// that does not exist means "no user agents" and is not an error; one that cannot be
    /// read is a single error. Subdirectories and hidden files (editor swap and lock
    /// files start with `.`) are ignored; files are read in name order so the result does
    /// not depend on the file system's listing order. The returned errors also include any
    /// broken built-in file.
    ///
    /// This does blocking file I/O: call it at startup or from `spawn_blocking`, not on
    /// an async task.
    pub fn load(user_dir: Option<&Path>) -> (Registry, Vec<AgentFileError>) {
        let (mut registry, mut errors) = BUILTIN.clone();
        if let Some(dir) = user_dir {
            registry.load_user_dir(dir, &mut errors);
        }
        (registry, errors)
    }

    /// The agent with this id, if any.
    pub fn get(&self, id: &str) -> Option<&AgentSpec> {
        self.agents.get(id).map(|entry| &entry.spec)
    }

    /// Every agent, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &AgentSpec> {
        self.agents.values().map(|entry| &entry.spec)
    }

    /// How many agents are registered.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    /// Whether no agent is registered (only possible with a broken build).
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// The agents that list `capability`, in id order: the candidate set the orchestrator
    /// ranks when a task requires that capability.
    pub fn with_capability(&self, capability: &str) -> Vec<&AgentSpec> {
        self.iter()
            .filter(|spec| spec.has_capability(capability))
            .collect()
    }

    /// Every capability some agent offers, so the API can reject a task whose
    /// requirements no agent could ever meet, and the dashboard can offer a pick list.
    pub fn capabilities(&self) -> BTreeSet<String> {
        self.iter()
            .flat_map(|spec| spec.capabilities.iter().cloned())
            .collect()
    }

    /// Where the agent with this id was defined, if it exists.
    pub fn source(&self, id: &str) -> Option<AgentSource> {
        self.agents.get(id).map(|entry| entry.source.clone())
    }

    /// The built-in definition of `id`, whatever the user's files make of it.
    pub fn builtin_spec(id: &str) -> Option<AgentSpec> {
        BUILTIN.0.get(id).cloned()
    }

    /// Registers `spec` as defined by the user file at `path` (see [`write_user_file`]),
    /// replacing any agent with the same id.
    pub fn set_user(&mut self, spec: AgentSpec, path: PathBuf) {
        self.insert(spec, AgentSource::User(path));
    }

    /// Forgets the user's definition of `id`: the built-in one, if there is one, takes its
    /// place again and is returned; otherwise the id is no longer registered.
    pub fn unset_user(&mut self, id: &str) -> Option<AgentSpec> {
        self.agents.remove(id);
        let builtin = BUILTIN.0.agents.get(id)?.clone();
        let spec = builtin.spec.clone();
        self.agents.insert(id.to_owned(), builtin);
        Some(spec)
    }

    /// Adds `spec`, replacing any agent with the same id.
    fn insert(&mut self, spec: AgentSpec, source: AgentSource) {
        self.agents.insert(spec.id.clone(), Entry { spec, source });
    }

    /// Overlays the agent files of `dir` on this registry, collecting errors.
    fn load_user_dir(&mut self, dir: &Path, errors: &mut Vec<AgentFileError>) {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return,
            Err(err) => {
                errors.push(AgentFileError::new(
                    dir,
                    None,
                    format!("cannot read the agent directory: {err}"),
                ));
                return;
            }
        };
        let mut files = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => {
                    let path = entry.path();
                    if is_agent_file_name(&path) && path.is_file() {
                        files.push(path);
                    }
                }
                Err(err) => errors.push(AgentFileError::new(
                    dir,
                    None,
                    format!("cannot list the agent directory: {err}"),
                )),
            }
        }
        files.sort();
        for path in files {
            match read_user_file(&path).and_then(|text| parse_agent_file(&path, &text)) {
                Ok(spec) => self.insert(spec, AgentSource::User(path)),
                Err(err) => errors.push(err),
            }
        }
    }
}

/// Writes `spec` to `<dir>/<id>.toml`, the file [`Registry::load`] reads it back from,
/// and returns that path.
///
/// The spec is validated first and the text is parsed back before it replaces anything,
/// so a file this writes always loads. The write is atomic: a hidden temporary file in the
/// same directory (the loader skips hidden files), flushed to disk, then renamed over the
/// old file — a crash leaves the old definition or the new one, never half of either. The
/// directory is created when missing. Blocking file I/O.
pub fn write_user_file(dir: &Path, spec: &AgentSpec) -> Result<PathBuf, AgentFileError> {
    let path = dir.join(format!("{}.toml", spec.id));
    crate::parse::validate(spec)
        .map_err(|(field, message)| AgentFileError::new(&path, Some(field), message))?;
    let text = toml::to_string(spec).map_err(|e| {
        AgentFileError::new(&path, None, format!("cannot write the definition: {e}"))
    })?;
    let text = format!(
        "# Agent `{}`, written by SutazAI (dashboard or API); edit freely, the format is in\n\
         # the sutazai-agents crate's documentation.\n{text}",
        spec.id
    );
    if text.len() as u64 > MAX_USER_FILE_BYTES {
        return Err(AgentFileError::new(
            &path,
            None,
            format!(
                "the definition is {} bytes; agent files are limited to {MAX_USER_FILE_BYTES} bytes",
                text.len()
            ),
        ));
    }
    // Whatever was written must read back as the same agent.
    let reread = parse_agent_file(&path, &text)?;
    if &reread != spec {
        return Err(AgentFileError::new(
            &path,
            None,
            "the written definition does not read back unchanged",
        ));
    }
    let io_error =
        |what: &str, err: io::Error| AgentFileError::new(&path, None, format!("{what}: {err}"));
    fs::create_dir_all(dir).map_err(|e| io_error("cannot create the agent directory", e))?;
    let temporary = dir.join(format!(".{}.toml.tmp", spec.id));
    let written = (|| {
        let mut file = fs::File::create(&temporary)?;
        io::Write::write_all(&mut file, text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&temporary, &path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temporary);
        return Err(io_error("cannot write", e));
    }
    Ok(path)
}

/// Deletes the user file `<dir>/<id>.toml`; `false` when there was none. Blocking I/O.
pub fn remove_user_file(dir: &Path, id: &str) -> Result<bool, AgentFileError> {
    if !crate::parse::is_valid_id(id) {
        return Err(AgentFileError::new(
            dir,
            Some("id".to_owned()),
            format!("`{id}` is not a valid agent id"),
        ));
    }
    let path = dir.join(format!("{id}.toml"));
    match fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(AgentFileError::new(
            &path,
            None,
            format!("cannot delete: {e}"),
        )),
    }
}

/// Whether `path` names a file the loader should read: `*.toml`, not hidden.
fn is_agent_file_name(path: &Path) -> bool {
    let visible = path
        .file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| !name.starts_with('.'));
    visible && path.extension().is_some_and(|ext| ext == "toml")
}

/// Reads one user agent file as UTF-8 text, refusing oversized files.
fn read_user_file(path: &Path) -> Result<String, AgentFileError> {
    let io_error = |err: io::Error| AgentFileError::new(path, None, format!("cannot read: {err}"));
    let size = fs::metadata(path).map_err(io_error)?.len();
    if size > MAX_USER_FILE_BYTES {
        return Err(AgentFileError::new(
            path,
            None,
            format!("file is {size} bytes; agent files are limited to {MAX_USER_FILE_BYTES} bytes"),
        ));
    }
    let bytes = fs::read(path).map_err(io_error)?;
    String::from_utf8(bytes).map_err(|_| AgentFileError::new(path, None, "file is not valid UTF-8"))
}

/// Parses the embedded built-in files, logging and skipping any that fail.
fn parse_builtin() -> (Registry, Vec<AgentFileError>) {
    let mut registry = Registry::default();
    let mut errors = Vec::new();
    for file in BUILTIN_DIR.files() {
        let path = Path::new(BUILTIN_PREFIX).join(file.path());
        if !is_agent_file_name(&path) {
            continue;
        }
        let parsed = match file.contents_utf8() {
            Some(text) => parse_agent_file(&path, text),
            None => Err(AgentFileError::new(&path, None, "file is not valid UTF-8")),
        };
        match parsed {
            Ok(spec) => registry.insert(spec, AgentSource::Builtin),
            Err(err) => {
                tracing::error!(error = %err, "skipping a broken built-in agent file");
                errors.push(err);
            }
        }
    }
    (registry, errors)
}
