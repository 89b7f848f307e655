//! The `sutazai` command line end to end (the `sutazai-headless` build, same CLI): model
//! listing and pulling with progress against the Ollama-API test server, and a task
//! submitted with `--wait` to a real `serve` process completing on the real model.

use std::process::{Command, Stdio};
use sutazai_tests::{
    TEST_MODEL, TestLlm, free_port, headless_binary, headless_command, wait_healthy,
};

fn cli(bin: &std::path::Path, llm: &str, port: u16, data: &std::path::Path) -> Command {
    let mut command = headless_command(bin, llm, port, data);
    command.env("SUTAZAI_MAX_TOKENS", "16");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_and_task_submit_wait() {
    let bin = headless_binary().expect("sutazai-headless");
    let llm = TestLlm::spawn(0).expect("test LLM");
    let data = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();

    let out = cli(&bin, &llm.url, port, data.path())
        .args(["models", "list"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(TEST_MODEL) && stdout.contains("(default)"),
        "{stdout}"
    );

    let out = cli(&bin, &llm.url, port, data.path())
        .args(["models", "pull"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("pulling manifest") && stderr.contains('%'),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("pulled {TEST_MODEL}")));

    let out = cli(&bin, &llm.url, port, data.path())
        .args(["models", "pull", "no-such-model:1b"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-model"));

    let mut server = cli(&bin, &llm.url, port, data.path())
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_healthy(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("serve up");
    let out = cli(&bin, &llm.url, port, data.path())
        .args([
            "task",
            "submit",
            "--name",
            "cli task",
            "--requirement",
            "code_generation",
        ])
        .args(["--pattern", "pipeline", "--wait", "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"completed\""), "{stdout}");

    let out = cli(&bin, &llm.url, port, data.path())
        .args(["task", "list", "--status", "completed"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("cli task"));
    server.kill().ok();
    server.wait().ok();
}
