//! Settings: precedence (defaults < config file < environment) and the failure messages,
//! which must name the variable or key and the bad value.
//!
//! Every test builds its environment with `EnvVars::from_pairs` and its directories in a
//! temporary directory, so nothing depends on (or changes) the process environment.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sutazai_cli::settings::{
    DEFAULT_PROVIDER, EnvVars, Locations, ProviderKind, Settings, SettingsError,
};

/// A sandbox: platform directories inside a temporary directory.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn locations(&self) -> Locations {
        Locations {
            config_dir: Some(self.path().join("config")),
            data_dir: Some(self.path().join("data")),
            ui_candidates: vec![self.path().join("ui").join("dist")],
        }
    }

    /// Writes a config file and returns its path.
    fn file(&self, name: &str, toml: &str) -> PathBuf {
        let path = self.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, toml).expect("write config");
        path
    }

    fn load(&self, config: Option<&Path>, env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::load_with(
            config,
            &EnvVars::from_pairs(env.iter().copied()),
            &self.locations(),
        )
    }

    fn error(&self, config: Option<&Path>, env: &[(&str, &str)]) -> String {
        self.load(config, env)
            .expect_err("these settings must be refused")
            .to_string()
    }
}

#[test]
fn defaults_apply_when_nothing_is_set() {
    let sandbox = Sandbox::new();
    let s = sandbox.load(None, &[]).expect("defaults load");
    assert_eq!(s.config_file, None);
    assert_eq!(s.host, "127.0.0.1");
    assert_eq!(s.port, 8000);
    assert_eq!(s.api_base_url(), "http://127.0.0.1:8000");
    assert_eq!(s.log_level, "info");
    assert!(!s.enable_auth);
    assert_eq!(s.redis_url, None);
    assert_eq!(s.max_concurrent_tasks, 100);
    assert_eq!(s.heartbeat_interval, Duration::from_secs(30));
    assert_eq!(s.message_retention, Duration::from_secs(168 * 3600));
    assert_eq!(s.metrics_retention, Duration::from_secs(30 * 86_400));
    assert_eq!(s.session_timeout, Duration::from_secs(3600));
    assert_eq!(s.ollama_api_url, "http://127.0.0.1:11434");
    assert_eq!(s.model, "llama3.2");
    assert_eq!(s.data_dir, sandbox.path().join("data"));
    assert_eq!(
        s.journal_path(),
        sandbox.path().join("data").join("journal.sqlite3")
    );
    assert_eq!(s.agents_dir, sandbox.path().join("config").join("agents"));
    assert_eq!(s.max_tokens, 512);
    assert_eq!(s.step_timeout, Duration::from_secs(300));
    assert_eq!(s.max_attempts, 3);
    assert_eq!(s.swarm_rounds, 2);
    assert_eq!(s.ui_dir, None, "no ui/dist exists in the sandbox");
    assert_eq!(s.default_provider, DEFAULT_PROVIDER);
    let ollama = &s.providers[DEFAULT_PROVIDER];
    assert_eq!(ollama.kind, ProviderKind::Ollama);
    assert_eq!(ollama.base_url, "http://127.0.0.1:11434");
    assert!(s.agents.is_empty());
}

#[test]
fn the_file_overrides_defaults_and_the_environment_overrides_the_file() {
    let sandbox = Sandbox::new();
    let config = sandbox.file(
        "custom.toml",
        r#"
orchestration_api_port = 9000
model = "file-model"
max_concurrent_tasks = 7
ollama_api_url = "http://file-host:11434"
"#,
    );
    let s = sandbox.load(Some(&config), &[]).expect("file loads");
    assert_eq!(s.config_file.as_deref(), Some(config.as_path()));
    assert_eq!(s.port, 9000);
    assert_eq!(s.model, "file-model");
    assert_eq!(s.max_concurrent_tasks, 7);
    assert_eq!(
        s.providers[DEFAULT_PROVIDER].base_url,
        "http://file-host:11434"
    );

    let s = sandbox
        .load(
            Some(&config),
            &[
                ("ORCHESTRATION_API_PORT", "9100"),
                ("SUTAZAI_MODEL", "env-model"),
                ("OLLAMA_API_URL", "http://env-host:11434/"),
            ],
        )
        .expect("file and environment load");
    assert_eq!(s.port, 9100, "environment beats file");
    assert_eq!(s.model, "env-model");
    assert_eq!(s.max_concurrent_tasks, 7, "file beats default");
    assert_eq!(
        s.providers[DEFAULT_PROVIDER].base_url,
        "http://env-host:11434"
    );
}

#[test]
fn every_spec_variable_is_read_unprefixed() {
    let sandbox = Sandbox::new();
    let ui = sandbox.path().join("my-ui");
    std::fs::create_dir_all(&ui).expect("mkdir");
    let ui_str = ui.to_string_lossy().into_owned();
    let s = sandbox
        .load(
            None,
            &[
                ("ORCHESTRATION_API_HOST", "0.0.0.0"),
                ("ORCHESTRATION_API_PORT", "8123"),
                ("REDIS_URL", "redis://redis:6379"),
                ("LOG_LEVEL", "info,sutazai_orchestrator=debug"),
                ("ENABLE_AUTH", "false"),
                ("JWT_SECRET_KEY", "very-secret"),
                ("SESSION_TIMEOUT", "60"),
                ("MAX_CONCURRENT_TASKS", "3"),
                ("WEBSOCKET_HEARTBEAT_INTERVAL", "5"),
                ("MESSAGE_RETENTION_HOURS", "2"),
                ("METRICS_RETENTION_DAYS", "1"),
                ("DOCKER_HOST", "unix:///var/run/docker.sock"),
                ("OLLAMA_API_URL", "http://ollama:11434"),
                ("ENABLE_AUTO_SCALING", "true"),
                ("SUTAZAI_MODEL", "qwen2.5:7b"),
                ("SUTAZAI_DATA_DIR", "/srv/sutazai"),
                ("SUTAZAI_AGENTS_DIR", "/etc/sutazai/agents"),
                ("SUTAZAI_MAX_TOKENS", "1024"),
                ("SUTAZAI_STEP_TIMEOUT", "30"),
                ("SUTAZAI_MAX_ATTEMPTS", "1"),
                ("SUTAZAI_SWARM_ROUNDS", "4"),
                ("SUTAZAI_UI_DIR", &ui_str),
            ],
        )
        .expect("valid environment");
    assert_eq!(s.host, "0.0.0.0");
    assert_eq!(
        s.api_base_url(),
        "http://127.0.0.1:8123",
        "wildcard maps to loopback"
    );
    assert_eq!(s.redis_url.as_deref(), Some("redis://redis:6379"));
    assert_eq!(s.log_level, "info,sutazai_orchestrator=debug");
    assert_eq!(
        s.jwt_secret_key.as_ref().map(|k| k.expose()),
        Some("very-secret")
    );
    assert_eq!(s.session_timeout, Duration::from_secs(60));
    assert_eq!(s.max_concurrent_tasks, 3);
    assert_eq!(s.heartbeat_interval, Duration::from_secs(5));
    assert_eq!(s.message_retention, Duration::from_secs(7200));
    assert_eq!(s.metrics_retention, Duration::from_secs(86_400));
    assert_eq!(
        s.docker_host.as_deref(),
        Some("unix:///var/run/docker.sock")
    );
    assert!(s.enable_auto_scaling);
    assert_eq!(s.model, "qwen2.5:7b");
    assert_eq!(s.data_dir, PathBuf::from("/srv/sutazai"));
    assert_eq!(s.agents_dir, PathBuf::from("/etc/sutazai/agents"));
    assert_eq!(s.max_tokens, 1024);
    assert_eq!(s.step_timeout, Duration::from_secs(30));
    assert_eq!(s.max_attempts, 1);
    assert_eq!(s.swarm_rounds, 4);
    assert_eq!(s.ui_dir.as_deref(), Some(ui.as_path()));
    let debug = format!("{s:?}");
    assert!(
        !debug.contains("very-secret"),
        "secrets stay out of Debug: {debug}"
    );
}

#[test]
fn the_config_file_is_found_by_flag_then_variable_then_config_dir() {
    let sandbox = Sandbox::new();
    let default = sandbox.file("config/sutazai.toml", "model = \"from-default\"\n");
    let by_env = sandbox.file("env.toml", "model = \"from-env\"\n");
    let by_flag = sandbox.file("flag.toml", "model = \"from-flag\"\n");
    let env_path = by_env.to_string_lossy().into_owned();

    let s = sandbox.load(None, &[]).expect("default file");
    assert_eq!(s.model, "from-default");
    assert_eq!(s.config_file.as_deref(), Some(default.as_path()));

    let s = sandbox
        .load(None, &[("SUTAZAI_CONFIG", &env_path)])
        .expect("env file");
    assert_eq!(s.model, "from-env");

    let s = sandbox
        .load(Some(&by_flag), &[("SUTAZAI_CONFIG", &env_path)])
        .expect("flag file");
    assert_eq!(s.model, "from-flag");
}

#[test]
fn a_named_config_file_must_exist() {
    let sandbox = Sandbox::new();
    let missing = sandbox.path().join("nope.toml");
    let message = sandbox.error(Some(&missing), &[]);
    assert_eq!(
        message,
        format!(
            "config file {} (from --config) does not exist",
            missing.display()
        )
    );
    let missing_str = missing.to_string_lossy().into_owned();
    let message = sandbox.error(None, &[("SUTAZAI_CONFIG", &missing_str)]);
    assert!(
        message.contains("(from SUTAZAI_CONFIG) does not exist"),
        "{message}"
    );
}

#[test]
fn bad_environment_values_name_the_variable_and_the_value() {
    let sandbox = Sandbox::new();
    let cases: &[(&str, &str, &str)] = &[
        (
            "ORCHESTRATION_API_PORT",
            "abc",
            "ORCHESTRATION_API_PORT=abc: invalid digit found in string",
        ),
        (
            "ORCHESTRATION_API_PORT",
            "-1",
            "ORCHESTRATION_API_PORT=-1: invalid digit found in string",
        ),
        (
            "ORCHESTRATION_API_PORT",
            "70000",
            "ORCHESTRATION_API_PORT=70000: number too large to fit in target type",
        ),
        (
            "MAX_CONCURRENT_TASKS",
            "0",
            "MAX_CONCURRENT_TASKS=0: must be at least 1",
        ),
        (
            "MAX_CONCURRENT_TASKS",
            "-4",
            "MAX_CONCURRENT_TASKS=-4: invalid digit found in string",
        ),
        (
            "WEBSOCKET_HEARTBEAT_INTERVAL",
            "0",
            "WEBSOCKET_HEARTBEAT_INTERVAL=0: must be at least 1",
        ),
        (
            "SUTAZAI_MAX_ATTEMPTS",
            "many",
            "SUTAZAI_MAX_ATTEMPTS=many: invalid digit found in string",
        ),
        (
            "ENABLE_AUTH",
            "maybe",
            "ENABLE_AUTH=maybe: expected true or false (or 1/0, yes/no, on/off)",
        ),
        (
            "OLLAMA_API_URL",
            "ftp://models",
            "OLLAMA_API_URL=ftp://models: unsupported scheme `ftp` (expected http, https)",
        ),
        (
            "OLLAMA_API_URL",
            "localhost:11434",
            "OLLAMA_API_URL=localhost:11434: unsupported scheme `localhost` (expected http, https)",
        ),
        (
            "OLLAMA_API_URL",
            "not a url",
            "OLLAMA_API_URL=not a url: not a URL: relative URL without a base",
        ),
        (
            "REDIS_URL",
            "http://redis",
            "REDIS_URL=http://redis: unsupported scheme `http` (expected redis, rediss, unix, redis+unix)",
        ),
    ];
    for (var, value, expected) in cases {
        assert_eq!(
            sandbox.error(None, &[(var, value)]),
            *expected,
            "{var}={value}"
        );
    }
    let message = sandbox.error(None, &[("LOG_LEVEL", "info,foo=[")]);
    assert!(
        message.starts_with("LOG_LEVEL=info,foo=[: not a log level or filter"),
        "{message}"
    );
    let message = sandbox.error(None, &[("SUTAZAI_UI_DIR", "/definitely/not/here")]);
    assert_eq!(
        message,
        "SUTAZAI_UI_DIR=/definitely/not/here: no such directory"
    );
}

#[test]
fn an_empty_variable_counts_as_unset() {
    let sandbox = Sandbox::new();
    let s = sandbox
        .load(
            None,
            &[("ORCHESTRATION_API_PORT", ""), ("SUTAZAI_MODEL", "  ")],
        )
        .expect("empty variables are ignored");
    assert_eq!(s.port, 8000);
    assert_eq!(s.model, "llama3.2");
}

#[test]
fn booleans_accept_the_usual_spellings() {
    let sandbox = Sandbox::new();
    for yes in ["true", "TRUE", "1", "yes", "on"] {
        let s = sandbox
            .load(None, &[("ENABLE_AUTO_SCALING", yes)])
            .expect("bool");
        assert!(s.enable_auto_scaling, "{yes}");
    }
    for no in ["false", "0", "no", "Off"] {
        let s = sandbox
            .load(None, &[("ENABLE_AUTO_SCALING", no)])
            .expect("bool");
        assert!(!s.enable_auto_scaling, "{no}");
    }
}

#[test]
fn bad_file_values_name_the_file_and_the_key() {
    let sandbox = Sandbox::new();
    let config = sandbox.file("bad.toml", "orchestration_api_port = \"abc\"\n");
    assert_eq!(
        sandbox.error(Some(&config), &[]),
        format!(
            "{}: orchestration_api_port = abc: invalid digit found in string",
            config.display()
        )
    );
    let config = sandbox.file("float.toml", "max_tokens = 1.5\n");
    assert_eq!(
        sandbox.error(Some(&config), &[]),
        format!(
            "{}: max_tokens = 1.5: invalid digit found in string",
            config.display()
        )
    );
    let config = sandbox.file("table.toml", "model = { name = \"x\" }\n");
    assert_eq!(
        sandbox.error(Some(&config), &[]),
        format!(
            "{}: model = {{ ... }}: expected a single value, found a table",
            config.display()
        )
    );
    let config = sandbox.file("empty-model.toml", "model = \"\"\n");
    assert_eq!(
        sandbox.error(Some(&config), &[]),
        format!("{}: model = : must not be empty", config.display())
    );
}

#[test]
fn a_good_environment_value_fixes_a_bad_file_value() {
    // The environment wins, so the file's bad value is never used and not an error.
    let sandbox = Sandbox::new();
    let config = sandbox.file("bad.toml", "orchestration_api_port = \"abc\"\n");
    let s = sandbox
        .load(Some(&config), &[("ORCHESTRATION_API_PORT", "8001")])
        .expect("environment overrides");
    assert_eq!(s.port, 8001);
}

#[test]
fn unknown_keys_and_syntax_errors_in_the_file_are_refused() {
    let sandbox = Sandbox::new();
    let config = sandbox.file("typo.toml", "modle = \"x\"\n");
    let message = sandbox.error(Some(&config), &[]);
    assert!(
        message.starts_with(&format!(
            "config file {}: unknown key `modle`",
            config.display()
        )),
        "{message}"
    );
    assert!(
        message.contains("model"),
        "the known keys are listed: {message}"
    );

    let config = sandbox.file("broken.toml", "model = \"unterminated\n");
    let message = sandbox.error(Some(&config), &[]);
    assert!(
        message.starts_with(&format!("config file {}:", config.display())),
        "{message}"
    );
    assert!(
        message.contains("line 1"),
        "the parser's position is kept: {message}"
    );
}

#[test]
fn relative_paths_in_the_file_are_relative_to_the_file() {
    let sandbox = Sandbox::new();
    let config = sandbox.file(
        "etc/sutazai.toml",
        "data_dir = \"state\"\nagents_dir = \"/abs/agents\"\n",
    );
    let s = sandbox.load(Some(&config), &[]).expect("loads");
    assert_eq!(s.data_dir, sandbox.path().join("etc").join("state"));
    assert_eq!(s.agents_dir, PathBuf::from("/abs/agents"));
}

#[test]
fn providers_and_agent_bindings_come_from_the_file() {
    let sandbox = Sandbox::new();
    let config = sandbox.file(
        "providers.toml",
        r#"
default_provider = "vllm"

[providers.vllm]
kind = "openai"
base_url = "http://127.0.0.1:8001/v1"
api_key_env = "VLLM_KEY"
timeout_secs = 900

[agents.senior-ai-engineer]
provider = "ollama"
model = "qwen2.5-coder:7b"

[agents.testing-qa-validator]
model = "llama3.2:1b"
"#,
    );
    let s = sandbox
        .load(
            Some(&config),
            &[
                ("VLLM_KEY", "sk-test-123"),
                ("OLLAMA_API_URL", "http://gpu:11434"),
            ],
        )
        .expect("loads");
    assert_eq!(s.default_provider, "vllm");
    let vllm = &s.providers["vllm"];
    assert_eq!(vllm.kind, ProviderKind::Openai);
    assert_eq!(vllm.base_url, "http://127.0.0.1:8001/v1");
    assert_eq!(
        vllm.api_key.as_ref().map(|k| k.expose()),
        Some("sk-test-123")
    );
    assert_eq!(vllm.timeout, Some(Duration::from_secs(900)));
    assert_eq!(
        s.providers[DEFAULT_PROVIDER].base_url, "http://gpu:11434",
        "the implicit ollama provider follows OLLAMA_API_URL"
    );
    let binding = &s.agents["senior-ai-engineer"];
    assert_eq!(binding.provider.as_deref(), Some("ollama"));
    assert_eq!(binding.model.as_deref(), Some("qwen2.5-coder:7b"));
    assert_eq!(s.agents["testing-qa-validator"].provider, None);
    let debug = format!("{s:?}");
    assert!(
        !debug.contains("sk-test-123"),
        "API keys stay out of Debug: {debug}"
    );

    let config = sutazai_cli::serve::orchestrator_config(&s);
    assert_eq!(config.default_provider, "vllm");
    assert_eq!(config.default_model, "llama3.2");
    assert_eq!(
        config.agent_bindings["senior-ai-engineer"].model.as_deref(),
        Some("qwen2.5-coder:7b")
    );
    let providers = sutazai_cli::serve::build_providers(&s).expect("providers build");
    let mut names: Vec<&String> = providers.keys().collect();
    names.sort();
    assert_eq!(names, ["ollama", "vllm"]);
}

#[test]
fn a_file_defined_ollama_provider_wins_over_ollama_api_url() {
    let sandbox = Sandbox::new();
    let config = sandbox.file(
        "ollama.toml",
        "[providers.ollama]\nkind = \"ollama\"\nbase_url = \"http://file-ollama:11434\"\n",
    );
    let s = sandbox
        .load(
            Some(&config),
            &[("OLLAMA_API_URL", "http://env-ollama:11434")],
        )
        .expect("loads");
    assert_eq!(
        s.providers[DEFAULT_PROVIDER].base_url,
        "http://file-ollama:11434"
    );

    let config = sandbox.file(
        "ollama-no-url.toml",
        "[providers.ollama]\nkind = \"ollama\"\ntimeout_secs = 5\n",
    );
    let s = sandbox
        .load(
            Some(&config),
            &[("OLLAMA_API_URL", "http://env-ollama:11434")],
        )
        .expect("loads");
    assert_eq!(
        s.providers[DEFAULT_PROVIDER].base_url,
        "http://env-ollama:11434"
    );
    assert_eq!(
        s.providers[DEFAULT_PROVIDER].timeout,
        Some(Duration::from_secs(5))
    );
}

#[test]
fn provider_and_binding_mistakes_name_their_key() {
    let sandbox = Sandbox::new();
    let config = sandbox.file("p1.toml", "default_provider = \"nope\"\n");
    assert_eq!(
        sandbox.error(Some(&config), &[]),
        format!(
            "{}: default_provider = nope: no provider with this name is configured (configured: ollama)",
            config.display()
        )
    );

    let config = sandbox.file("p2.toml", "[providers.x]\nkind = \"openai\"\n");
    assert_eq!(
        sandbox.error(Some(&config), &[]),
        format!(
            "{}: providers.x.base_url = : is required for kind = \"openai\"",
            config.display()
        )
    );

    let config = sandbox.file(
        "p3.toml",
        "[providers.x]\nkind = \"openai\"\nbase_url = \"http://h/v1\"\napi_key_env = \"MISSING_KEY\"\n",
    );
    assert_eq!(
        sandbox.error(Some(&config), &[]),
        format!(
            "{}: providers.x.api_key_env = MISSING_KEY: environment variable MISSING_KEY is not set",
            config.display()
        )
    );

    let config = sandbox.file("p4.toml", "[providers.x]\nkind = \"grpc\"\n");
    let message = sandbox.error(Some(&config), &[]);
    assert!(message.contains("providers.x"), "{message}");
    assert!(message.contains("grpc"), "{message}");

    let config = sandbox.file("p5.toml", "[agents.some-agent]\nprovider = \"ghost\"\n");
    assert_eq!(
        sandbox.error(Some(&config), &[]),
        format!(
            "{}: agents.some-agent.provider = ghost: no provider with this name is configured (configured: ollama)",
            config.display()
        )
    );

    let config = sandbox.file("p6.toml", "[agents.some-agent]\nmodle = \"x\"\n");
    let message = sandbox.error(Some(&config), &[]);
    assert!(message.contains("modle"), "{message}");
}

#[test]
fn the_dashboard_is_found_beside_the_working_directory() {
    let sandbox = Sandbox::new();
    let ui = sandbox.path().join("ui").join("dist");
    std::fs::create_dir_all(&ui).expect("mkdir");
    let s = sandbox.load(None, &[]).expect("loads");
    assert_eq!(s.ui_dir.as_deref(), Some(ui.as_path()));
}

#[test]
fn without_platform_directories_the_data_dir_must_be_set() {
    let env = EnvVars::from_pairs([("SUTAZAI_AGENTS_DIR", "/a")]);
    let err = Settings::load_with(None, &env, &Locations::default()).expect_err("no home");
    assert_eq!(
        err.to_string(),
        "cannot determine the default data directory (no home directory); set SUTAZAI_DATA_DIR"
    );
    let env = EnvVars::from_pairs([("SUTAZAI_AGENTS_DIR", "/a"), ("SUTAZAI_DATA_DIR", "/d")]);
    let s = Settings::load_with(None, &env, &Locations::default()).expect("explicit dirs");
    assert_eq!(s.data_dir, PathBuf::from("/d"));
}
