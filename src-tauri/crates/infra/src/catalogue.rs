//! The service catalogue: what `deploy-all` runs, as data.
//!
//! Built-in services live in `catalogue/*.toml` in this crate (`redis`, `ollama`,
//! `agent-worker`). A user directory of `*.toml` files overrides them: a file whose `name`
//! matches a built-in service replaces the fields it sets (a table such as `health` as a
//! whole), a new name adds a service, and `enabled = false` leaves one out. Unknown fields
//! are refused with the file and field named.
//!
//! Strings in `image`, `command`, `env` and `endpoint` may refer to variables: `${NAME}`
//! (from [`Catalogue::resolve`]'s map, e.g. `SUTAZAI_BUS_KEY`) and `${endpoint:SERVICE}`
//! (another service's `endpoint`), substituted when a container is created.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::InfraError;

const BUILT_IN: [(&str, &str); 3] = [
    ("redis.toml", include_str!("../catalogue/redis.toml")),
    ("ollama.toml", include_str!("../catalogue/ollama.toml")),
    (
        "agent-worker.toml",
        include_str!("../catalogue/agent-worker.toml"),
    ),
];

/// The most replicas a service may ask for.
pub const MAX_REPLICAS: u32 = 64;

/// What a service is, for the probes and steps specific to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    /// Probed with `PING` at its endpoint.
    Redis,
    /// Probed with `GET /api/tags`; its `models` are pulled through `/api/pull`.
    Ollama,
    /// `sutazai worker` processes.
    Worker,
    /// Anything else: Docker's health check only.
    #[default]
    Generic,
}

/// Whether a service gets the host's NVIDIA GPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GpuMode {
    /// When Docker has the NVIDIA runtime.
    Auto,
    /// Never.
    #[default]
    Never,
}

/// A published port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    /// Port inside the container.
    pub container: u16,
    /// Port on 127.0.0.1 of the host.
    pub host: u16,
}

/// A named volume mounted into the service's containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeSpec {
    /// Volume name (prefixed with the project when created).
    pub name: String,
    /// Mount point inside the container.
    pub path: String,
}

/// Docker's health check for the service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthSpec {
    /// The command, exec form (`["redis-cli", "ping"]`).
    pub test: Vec<String>,
    /// Seconds between checks.
    #[serde(default = "default_interval")]
    pub interval_s: f64,
    /// Seconds one check may take.
    #[serde(default = "default_interval")]
    pub timeout_s: f64,
    /// Failures in a row before the container is unhealthy.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Seconds after start during which failures do not count.
    #[serde(default)]
    pub start_period_s: f64,
}

fn default_interval() -> f64 {
    5.0
}

fn default_retries() -> u32 {
    3
}

/// CPU and memory limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPUs (1.5 = one and a half cores).
    #[serde(default)]
    pub cpus: Option<f64>,
    /// Memory limit in MiB.
    #[serde(default)]
    pub memory_mb: Option<u64>,
}

/// One service of the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Its name (`redis`): container names, labels and the API use it.
    pub name: String,
    /// What it is.
    #[serde(default)]
    pub kind: ServiceKind,
    /// One line for people.
    #[serde(default)]
    pub description: String,
    /// `false` leaves a built-in service out.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Image reference.
    pub image: String,
    /// Command (replaces the image's `CMD`); empty keeps the image's.
    #[serde(default)]
    pub command: Vec<String>,
    /// Environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Published ports (ignored with `network_mode = "host"`).
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    /// Named volumes.
    #[serde(default)]
    pub volumes: Vec<VolumeSpec>,
    /// Docker health check.
    #[serde(default)]
    pub health: Option<HealthSpec>,
    /// Limits per container.
    #[serde(default)]
    pub resources: Resources,
    /// Services deployed (and healthy) before this one.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Containers `deploy-all` runs.
    #[serde(default = "one")]
    pub replicas: u32,
    /// Auto-scaling bounds (workers).
    #[serde(default)]
    pub min_replicas: Option<u32>,
    /// Auto-scaling bounds (workers).
    #[serde(default)]
    pub max_replicas: Option<u32>,
    /// NVIDIA GPUs.
    #[serde(default)]
    pub gpu: GpuMode,
    /// Models an `ollama` service must have.
    #[serde(default)]
    pub models: Vec<String>,
    /// Docker network mode (`host`, `none`); unset: Docker's default.
    #[serde(default)]
    pub network_mode: Option<String>,
    /// Where the host reaches the service (`redis://127.0.0.1:6379`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// When the image is missing, build it from this app's own `sutazai-headless` binary
    /// (installed at `/usr/local/bin/sutazai-headless` in the image) instead of pulling it.
    #[serde(default)]
    pub build_local: bool,
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

impl ServiceSpec {
    /// Checks the fields that TOML's types do not.
    fn validate(&self, origin: &str) -> Result<(), InfraError> {
        let invalid = |field: &str, reason: String| InfraError::Catalogue {
            origin: origin.to_owned(),
            reason: format!("{field}: {reason}"),
        };
        if self.name.is_empty()
            || self.name.len() > 48
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            || self.name.starts_with('-')
        {
            return Err(invalid(
                "name",
                format!(
                    "{:?} must be 1–48 characters of a-z, 0-9 and '-', not starting with '-'",
                    self.name
                ),
            ));
        }
        if self.image.trim().is_empty() {
            return Err(invalid("image", "must not be empty".into()));
        }
        if self.replicas > MAX_REPLICAS {
            return Err(invalid(
                "replicas",
                format!("{} is above the limit of {MAX_REPLICAS}", self.replicas),
            ));
        }
        if let (Some(min), Some(max)) = (self.min_replicas, self.max_replicas)
            && (min > max || max > MAX_REPLICAS)
        {
            return Err(invalid(
                "min_replicas/max_replicas",
                format!("need min ≤ max ≤ {MAX_REPLICAS}, got {min} and {max}"),
            ));
        }
        if let Some(health) = &self.health {
            if health.test.is_empty() {
                return Err(invalid("health.test", "must not be empty".into()));
            }
            for (field, value) in [
                ("interval_s", health.interval_s),
                ("timeout_s", health.timeout_s),
            ] {
                if !(0.001..=3600.0).contains(&value) {
                    return Err(invalid(
                        &format!("health.{field}"),
                        format!("{value} is outside 0.001–3600 seconds"),
                    ));
                }
            }
            if health.retries > 1000 {
                return Err(invalid(
                    "health.retries",
                    format!("{} is above 1000", health.retries),
                ));
            }
            if !(0.0..=3600.0).contains(&health.start_period_s) {
                return Err(invalid(
                    "health.start_period_s",
                    format!("{} is outside 0–3600 seconds", health.start_period_s),
                ));
            }
        }
        if let Some(cpus) = self.resources.cpus
            && !(cpus > 0.0 && cpus <= 1024.0)
        {
            return Err(invalid(
                "resources.cpus",
                format!("{cpus} is not in (0, 1024]"),
            ));
        }
        if let Some(mb) = self.resources.memory_mb
            && !(4..=16 * 1024 * 1024).contains(&mb)
        {
            return Err(invalid(
                "resources.memory_mb",
                format!("{mb} is outside 4 MiB–16 TiB"),
            ));
        }
        for volume in &self.volumes {
            if volume.name.is_empty()
                || volume.name.len() > 64
                || !volume
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(invalid(
                    "volumes",
                    format!("name {:?} must be 1–64 of a-z, 0-9 and '-'", volume.name),
                ));
            }
            if !volume.path.starts_with('/') {
                return Err(invalid(
                    "volumes",
                    format!("path {:?} must be absolute", volume.path),
                ));
            }
        }
        Ok(())
    }

    /// The replicas a scale may ask for: the auto-scaling bounds when set, else 0–64.
    pub fn replica_bounds(&self) -> (u32, u32) {
        (
            self.min_replicas.unwrap_or(0),
            self.max_replicas.unwrap_or(MAX_REPLICAS),
        )
    }
}

/// The services, in dependency order.
#[derive(Debug, Clone)]
pub struct Catalogue {
    services: Vec<ServiceSpec>,
}

impl Catalogue {
    /// The built-in services only.
    pub fn built_in() -> Result<Catalogue, InfraError> {
        Catalogue::load(None)
    }

    /// The built-in services overridden by the `*.toml` files in `dir` (when it exists).
    pub fn load(dir: Option<&Path>) -> Result<Catalogue, InfraError> {
        let mut tables: Vec<(String, toml::Table)> = Vec::new();
        for (file, text) in BUILT_IN {
            let table = parse(&format!("built-in {file}"), text)?;
            tables.push((format!("built-in {file}"), table));
        }
        if let Some(dir) = dir
            && dir.is_dir()
        {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| InfraError::Catalogue {
                    origin: dir.display().to_string(),
                    reason: e.to_string(),
                })?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            files.sort();
            for path in files {
                let origin = path.display().to_string();
                let text = std::fs::read_to_string(&path).map_err(|e| InfraError::Catalogue {
                    origin: origin.clone(),
                    reason: e.to_string(),
                })?;
                let table = parse(&origin, &text)?;
                let name = table.get("name").and_then(|v| v.as_str()).ok_or_else(|| {
                    InfraError::Catalogue {
                        origin: origin.clone(),
                        reason: "name: missing (every service file names its service)".into(),
                    }
                })?;
                match tables
                    .iter_mut()
                    .find(|(_, t)| t.get("name").and_then(|v| v.as_str()) == Some(name))
                {
                    Some((from, existing)) => {
                        for (key, value) in table {
                            existing.insert(key, value);
                        }
                        *from = format!("{from} overridden by {origin}");
                    }
                    None => tables.push((origin, table)),
                }
            }
        }
        let mut services = Vec::new();
        let mut disabled = BTreeSet::new();
        for (origin, table) in tables {
            // Through text so that a type error shows the offending line (and so its key).
            let merged = toml::to_string(&table).map_err(|e| InfraError::Catalogue {
                origin: origin.clone(),
                reason: e.to_string(),
            })?;
            let spec: ServiceSpec =
                toml::from_str(&merged).map_err(|e: toml::de::Error| InfraError::Catalogue {
                    origin: origin.clone(),
                    reason: e.to_string().trim().to_owned(),
                })?;
            spec.validate(&origin)?;
            if spec.enabled {
                services.push(spec);
            } else {
                disabled.insert(spec.name);
            }
        }
        Catalogue::ordered(services, &disabled)
    }

    /// Orders `services` so that each comes after what it depends on; refuses unknown
    /// dependencies and cycles. Dependencies on `disabled` services are dropped.
    fn ordered(
        services: Vec<ServiceSpec>,
        disabled: &BTreeSet<String>,
    ) -> Result<Catalogue, InfraError> {
        let names: BTreeSet<String> = services.iter().map(|s| s.name.clone()).collect();
        for s in &services {
            if let Some(unknown) = s
                .depends_on
                .iter()
                .find(|d| !names.contains(*d) && !disabled.contains(*d))
            {
                return Err(InfraError::Catalogue {
                    origin: format!("service {}", s.name),
                    reason: format!("depends_on: no service named {unknown:?}"),
                });
            }
        }
        let mut pending: Vec<ServiceSpec> = services
            .into_iter()
            .map(|mut s| {
                s.depends_on.retain(|d| names.contains(d));
                s
            })
            .collect();
        let mut done: Vec<ServiceSpec> = Vec::new();
        while !pending.is_empty() {
            let ready = pending.iter().position(|s| {
                s.depends_on
                    .iter()
                    .all(|d| done.iter().any(|x| &x.name == d))
            });
            match ready {
                Some(i) => done.push(pending.remove(i)),
                None => {
                    let stuck: Vec<&str> = pending.iter().map(|s| s.name.as_str()).collect();
                    return Err(InfraError::Catalogue {
                        origin: "catalogue".into(),
                        reason: format!("depends_on forms a cycle among {}", stuck.join(", ")),
                    });
                }
            }
        }
        Ok(Catalogue { services: done })
    }

    /// Every service, dependencies first.
    pub fn services(&self) -> &[ServiceSpec] {
        &self.services
    }

    /// One service by name.
    pub fn get(&self, name: &str) -> Option<&ServiceSpec> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Adds or replaces a service (e.g. a worker for one agent), keeping the order valid.
    pub fn with(&self, spec: ServiceSpec) -> Result<Catalogue, InfraError> {
        spec.validate("derived service")?;
        let mut services: Vec<ServiceSpec> = self
            .services
            .iter()
            .filter(|s| s.name != spec.name)
            .cloned()
            .collect();
        services.push(spec);
        Catalogue::ordered(services, &BTreeSet::new())
    }

    /// `spec` with its variables substituted: `${NAME}` from `vars`, `${endpoint:SERVICE}`
    /// from the catalogue. An unknown variable is an error naming it.
    pub fn resolve(
        &self,
        spec: &ServiceSpec,
        vars: &BTreeMap<String, String>,
    ) -> Result<ServiceSpec, InfraError> {
        let sub = |text: &str| substitute(text, &|name| self.variable(name, vars, 0));
        let mut out = spec.clone();
        out.image = sub(&spec.image)?;
        out.command = spec
            .command
            .iter()
            .map(|c| sub(c))
            .collect::<Result<_, _>>()?;
        out.env = spec
            .env
            .iter()
            .map(|(k, v)| Ok((k.clone(), sub(v)?)))
            .collect::<Result<_, InfraError>>()?;
        out.endpoint = spec.endpoint.as_deref().map(sub).transpose()?;
        out.models = spec
            .models
            .iter()
            .map(|m| sub(m))
            .collect::<Result<_, _>>()?;
        Ok(out)
    }

    fn variable(
        &self,
        name: &str,
        vars: &BTreeMap<String, String>,
        depth: usize,
    ) -> Result<String, String> {
        if let Some(service) = name.strip_prefix("endpoint:") {
            let endpoint = self
                .get(service)
                .and_then(|s| s.endpoint.as_deref())
                .ok_or_else(|| format!("no service {service:?} with an endpoint"))?;
            if depth > 4 {
                return Err(format!("endpoint of {service:?} refers to itself"));
            }
            return substitute(endpoint, &|n| self.variable(n, vars, depth + 1))
                .map_err(|e| e.to_string());
        }
        vars.get(name)
            .cloned()
            .ok_or_else(|| format!("variable {name} is not set"))
    }
}

/// Replaces each `${…}` in `text` with `lookup(…)`.
fn substitute(
    text: &str,
    lookup: &dyn Fn(&str) -> Result<String, String>,
) -> Result<String, InfraError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| InfraError::Catalogue {
            origin: "catalogue".into(),
            reason: format!("unclosed ${{ in {text:?}"),
        })?;
        let value = lookup(&after[..end]).map_err(|reason| InfraError::Catalogue {
            origin: "catalogue".into(),
            reason: format!("{reason} (in {text:?})"),
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn parse(origin: &str, text: &str) -> Result<toml::Table, InfraError> {
    text.parse::<toml::Table>()
        .map_err(|e| InfraError::Catalogue {
            origin: origin.to_owned(),
            reason: e.message().to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [
            ("SUTAZAI_BUS_KEY", "a2V5"),
            ("SUTAZAI_BUS_NAMESPACE", "sutazai"),
            ("SUTAZAI_MODEL", "smollm2:135m"),
            ("SUTAZAI_WORKER_TAG", "0.1.0-test"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn built_in_services_in_dependency_order() {
        let c = Catalogue::built_in().unwrap();
        let names: Vec<&str> = c.services().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["redis", "ollama", "agent-worker"]);
        let redis = c.get("redis").unwrap();
        assert!(redis.command.iter().any(|a| a == "--appendonly"));
        assert_eq!(redis.kind, ServiceKind::Redis);
        assert_eq!(c.get("ollama").unwrap().gpu, GpuMode::Auto);
    }

    #[test]
    fn variables_and_endpoints_resolve() {
        let c = Catalogue::built_in().unwrap();
        let worker = c.resolve(c.get("agent-worker").unwrap(), &vars()).unwrap();
        assert_eq!(worker.env["REDIS_URL"], "redis://127.0.0.1:6379");
        assert_eq!(worker.env["OLLAMA_API_URL"], "http://127.0.0.1:11434");
        assert_eq!(worker.env["SUTAZAI_BUS_KEY"], "a2V5");
        assert_eq!(worker.image, "sutazai/worker:0.1.0-test");
        assert!(worker.build_local);
        let ollama = c.resolve(c.get("ollama").unwrap(), &vars()).unwrap();
        assert_eq!(ollama.models, ["smollm2:135m"]);
        let mut missing = vars();
        missing.remove("SUTAZAI_BUS_KEY");
        let error = c
            .resolve(c.get("agent-worker").unwrap(), &missing)
            .unwrap_err()
            .to_string();
        assert!(error.contains("SUTAZAI_BUS_KEY"), "{error}");
    }

    #[test]
    fn user_files_override_add_and_disable() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("redis.toml"),
            "name = \"redis\"\nimage = \"local/redis:1\"\nnetwork_mode = \"host\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("ollama.toml"),
            "name = \"ollama\"\nenabled = false\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("extra.toml"),
            "name = \"extra\"\nimage = \"busybox\"\ndepends_on = [\"agent-worker\"]\n",
        )
        .unwrap();
        let c = Catalogue::load(Some(dir.path())).unwrap();
        let names: Vec<&str> = c.services().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["redis", "agent-worker", "extra"]);
        let redis = c.get("redis").unwrap();
        assert_eq!(redis.image, "local/redis:1");
        // Fields the file did not set stay built-in.
        assert!(redis.health.is_some());
        // The worker's dependency on the disabled ollama is dropped.
        assert_eq!(c.get("agent-worker").unwrap().depends_on, ["redis"]);
    }

    #[test]
    fn bad_files_name_the_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        for (text, expected) in [
            (
                "name = \"x\"\nimage = \"i\"\nreplicas = \"two\"\n",
                "replicas",
            ),
            ("name = \"x\"\nimage = \"i\"\ncolour = 1\n", "colour"),
            ("name = \"Bad Name\"\nimage = \"i\"\n", "name"),
            ("image = \"i\"\n", "name"),
            ("name = \"x\"\nimage = \"i\"\nreplicas = 1000\n", "replicas"),
            (
                "name = \"x\"\nimage = \"i\"\ndepends_on = [\"x\"]\n",
                "cycle",
            ),
            (
                "name = \"x\"\nimage = \"i\"\ndepends_on = [\"reddis\"]\n",
                "reddis",
            ),
            (
                "name = \"x\"\nimage = \"i\"\nhealth = { test = [\"t\"], retries = 4294967295 }\n",
                "retries",
            ),
            (
                "name = \"x\"\nimage = \"i\"\nresources = { memory_mb = 99999999999 }\n",
                "memory_mb",
            ),
            ("name = [\n", "bad.toml"),
        ] {
            std::fs::write(&path, text).unwrap();
            let error = Catalogue::load(Some(dir.path())).unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(
                error.contains("bad.toml")
                    || error.contains("service x")
                    || error.contains("cycle"),
                "{text:?}: {error}"
            );
        }
    }
}
