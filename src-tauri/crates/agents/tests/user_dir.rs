//! Loading a user agent directory on top of the built-ins, with real files in a tempdir:
//! good files add or override agents, bad files are reported one by one and skipped.

use std::fs;
use std::path::Path;

use sutazai_agents::{
    AgentFileError, AgentSource, Registry, parse_agent_file, remove_user_file, write_user_file,
};
use sutazai_core::{AgentCategory, AgentRole};

const NEW_AGENT: &str = r#"
id = "sql-reviewer"
name = "SQL Reviewer"
category = "development"
role = "worker"
capabilities = ["code_review", "database_design", "sql_optimization"]
system_prompt = "You review SQL for correctness and speed. Answer concisely."
temperature = 0.1
max_concurrency = 2
"#;

const OVERRIDE: &str = r#"
id = "senior-backend-developer"
name = "Backend Developer (house style)"
category = "development"
role = "worker"
capabilities = ["backend_development", "code_generation"]
model = "qwen2.5-coder:7b"
system_prompt = "You write Rust backends in our house style. Answer concisely."
"#;

const BAD_TEMPERATURE: &str = r#"
id = "hot-agent"
name = "Hot Agent"
category = "development"
role = "worker"
capabilities = ["code_generation"]
system_prompt = "Too hot. Answer concisely."
temperature = 3.5
"#;

const SYNTAX_ERROR: &str = r#"
id = "broken-agent"
name = "Broken Agent"
category = "development"
role = "worker"
capabilities = ["code_generation"
system_prompt = "Never closes its array. Answer concisely."
"#;

const UNKNOWN_FIELD: &str = r#"
id = "chatty-agent"
name = "Chatty Agent"
category = "development"
role = "worker"
capabilities = ["code_generation"]
system_prompt = "Has an extra key. Answer concisely."
colour = "blue"
"#;

const WRONG_ID: &str = r#"
id = "somebody-else"
name = "Misnamed Agent"
category = "security"
role = "monitor"
capabilities = ["security_review"]
system_prompt = "Lives in the wrong file. Answer concisely."
"#;

fn write(dir: &Path, name: &str, text: &str) {
    fs::write(dir.join(name), text).expect("write test agent file");
}

fn error_for<'a>(errors: &'a [AgentFileError], file: &str) -> &'a AgentFileError {
    errors
        .iter()
        .find(|e| e.path.file_name().is_some_and(|n| n == file))
        .unwrap_or_else(|| panic!("no error for {file}: {errors:#?}"))
}

#[test]
fn user_dir_adds_overrides_and_reports_bad_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "sql-reviewer.toml", NEW_AGENT);
    write(dir.path(), "senior-backend-developer.toml", OVERRIDE);
    write(dir.path(), "hot-agent.toml", BAD_TEMPERATURE);
    write(dir.path(), "broken-agent.toml", SYNTAX_ERROR);
    write(dir.path(), "chatty-agent.toml", UNKNOWN_FIELD);
    write(dir.path(), "misnamed.toml", WRONG_ID);
    // Ignored: not `*.toml`, hidden, or a directory.
    write(dir.path(), "notes.txt", "not an agent");
    write(dir.path(), ".sql-reviewer.toml", "editor swap file");
    fs::create_dir(dir.path().join("nested.toml")).expect("mkdir");

    let (registry, errors) = Registry::load(Some(dir.path()));

    assert_eq!(
        registry.len(),
        39,
        "38 built-ins + 1 new; errors: {errors:#?}"
    );

    let new = registry.get("sql-reviewer").expect("new agent loaded");
    assert_eq!(new.category, AgentCategory::Development);
    assert_eq!(new.role, AgentRole::Worker);
    assert_eq!(
        registry.source("sql-reviewer"),
        Some(AgentSource::User(dir.path().join("sql-reviewer.toml")))
    );
    assert_eq!(
        registry
            .with_capability("sql_optimization")
            .iter()
            .map(|a| a.id.as_str())
            .collect::<Vec<_>>(),
        ["sql-reviewer"]
    );
    assert!(registry.capabilities().contains("sql_optimization"));

    let overridden = registry
        .get("senior-backend-developer")
        .expect("override present");
    assert_eq!(overridden.name, "Backend Developer (house style)");
    assert_eq!(overridden.model.as_deref(), Some("qwen2.5-coder:7b"));
    assert_eq!(
        overridden.temperature, 0.2,
        "default applies to the override"
    );
    assert_eq!(
        registry.source("senior-backend-developer"),
        Some(AgentSource::User(
            dir.path().join("senior-backend-developer.toml")
        ))
    );
    assert_eq!(
        registry.source("senior-ai-engineer"),
        Some(AgentSource::Builtin)
    );

    for skipped in [
        "hot-agent",
        "broken-agent",
        "chatty-agent",
        "somebody-else",
        "misnamed",
    ] {
        assert!(registry.get(skipped).is_none(), "{skipped} must not load");
    }

    assert_eq!(errors.len(), 4, "{errors:#?}");
    let hot = error_for(&errors, "hot-agent.toml");
    assert_eq!(hot.field.as_deref(), Some("temperature"));
    assert_eq!(
        hot.to_string(),
        format!(
            "{}: field `temperature`: must be between 0.0 and 2.0, got 3.5",
            dir.path().join("hot-agent.toml").display()
        )
    );

    let broken = error_for(&errors, "broken-agent.toml");
    assert_eq!(broken.field.as_deref(), Some("capabilities"), "{broken}");
    assert!(broken.message.starts_with("line "), "{broken}");

    let chatty = error_for(&errors, "chatty-agent.toml");
    assert_eq!(chatty.field.as_deref(), Some("colour"), "{chatty}");
    assert!(chatty.message.starts_with("line 8, column 1: "), "{chatty}");

    let misnamed = error_for(&errors, "misnamed.toml");
    assert_eq!(misnamed.field.as_deref(), Some("id"), "{misnamed}");

    for err in &errors {
        let text = err.to_string();
        let file = err.path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        assert!(text.contains(file), "{text}");
        let field = err.field.as_deref().unwrap_or("?");
        assert!(text.contains(&format!("field `{field}`")), "{text}");
    }
}

#[test]
fn missing_user_dir_is_not_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (registry, errors) = Registry::load(Some(&dir.path().join("does-not-exist")));
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(registry.len(), 38);
}

#[test]
fn user_dir_that_is_a_file_is_one_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let not_a_dir = dir.path().join("agents");
    write(dir.path(), "agents", "a file, not a directory");
    let (registry, errors) = Registry::load(Some(&not_a_dir));
    assert_eq!(registry.len(), 38);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].path, not_a_dir);
    assert_eq!(errors[0].field, None);
}

#[test]
fn non_utf8_and_oversized_files_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("binary.toml"), [0xff, 0xfe, 0x00]).expect("write");
    fs::write(dir.path().join("huge.toml"), vec![b'#'; 2 * 1024 * 1024]).expect("write");
    let (registry, errors) = Registry::load(Some(dir.path()));
    assert_eq!(registry.len(), 38);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(error_for(&errors, "binary.toml").message.contains("UTF-8"));
    assert!(error_for(&errors, "huge.toml").message.contains("limited"));
}

#[test]
fn loading_does_not_change_the_builtins() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "senior-backend-developer.toml", OVERRIDE);
    let (registry, errors) = Registry::load(Some(dir.path()));
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(
        registry
            .get("senior-backend-developer")
            .map(|a| a.name.as_str()),
        Some("Backend Developer (house style)")
    );
    assert_eq!(
        Registry::builtin()
            .get("senior-backend-developer")
            .map(|a| a.name.as_str()),
        Some("Senior Backend Developer")
    );
}

#[test]
fn written_definitions_load_back_and_removal_restores_the_builtin() {
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents");
    let mut spec = parse_agent_file(Path::new("sql-reviewer.toml"), NEW_AGENT).unwrap();
    spec.system_prompt = "Quotes \" ''' and \\ backslashes,\nnew lines, ünïcödé.".into();
    let path = write_user_file(&agents, &spec).expect("written (directory created)");
    assert_eq!(path, agents.join("sql-reviewer.toml"));
    // Only the file itself: the temporary is gone.
    assert_eq!(fs::read_dir(&agents).unwrap().count(), 1);
    let (registry, errors) = Registry::load(Some(&agents));
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(registry.get("sql-reviewer"), Some(&spec));

    // An invalid definition is refused with its field and writes nothing.
    let mut bad = spec.clone();
    bad.id = "hot-agent".into();
    bad.temperature = 9.0;
    let err = write_user_file(&agents, &bad).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("temperature"));
    assert!(!agents.join("hot-agent.toml").exists());

    // Overriding a built-in, then forgetting the override, brings the built-in back.
    let builtin = Registry::builtin_spec("senior-backend-developer").unwrap();
    let mut mine = builtin.clone();
    mine.name = "Mine".into();
    let mut registry = registry;
    let path = write_user_file(&agents, &mine).unwrap();
    registry.set_user(mine.clone(), path);
    assert_eq!(registry.get("senior-backend-developer"), Some(&mine));
    assert!(remove_user_file(&agents, "senior-backend-developer").unwrap());
    assert_eq!(
        registry.unset_user("senior-backend-developer"),
        Some(builtin.clone())
    );
    assert_eq!(
        registry.source("senior-backend-developer"),
        Some(AgentSource::Builtin)
    );
    // A user-only agent disappears; a second removal finds no file.
    assert_eq!(registry.unset_user("sql-reviewer"), None);
    assert!(registry.get("sql-reviewer").is_none());
    assert!(remove_user_file(&agents, "sql-reviewer").unwrap());
    assert!(!remove_user_file(&agents, "sql-reviewer").unwrap());
    assert!(
        remove_user_file(&agents, "../etc").is_err(),
        "ids only, no paths"
    );
}
