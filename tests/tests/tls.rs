//! TLS on a real `sutazai-headless serve` (issue 7): with `SUTAZAI_TLS_CERT` and
//! `SUTAZAI_TLS_KEY` (a certificate from a test CA made here with `openssl`), on a non-loopback
//! bind, the API answers HTTPS only, authentication is on, an API key works over it, the
//! dashboard URL it prints is `https://`, and a WebSocket upgrades over TLS; half a
//! configuration or a key that does not match stops the start with a message naming what
//! to fix.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;
use sutazai_tests::{Kill, call_as, free_port, headless_binary, headless_command};

fn openssl(args: &[&str], dir: &Path) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl must be installed");
    assert!(status.success(), "openssl {args:?} failed");
}

/// A test CA (`ca.crt`) and, signed by it, a certificate for 127.0.0.1 and its key:
/// `<name>.crt`, `<name>.key` in `dir`.
fn certificate(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    if !dir.join("ca.crt").exists() {
        let mut args = vec!["req", "-x509", "-days", "1", "-subj", "/CN=sutazai test CA"];
        args.extend(ec);
        args.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
        openssl(&args, dir);
    }
    let (key, csr, crt) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
    );
    let mut args = vec!["req", "-subj", "/CN=127.0.0.1"];
    args.extend(ec);
    args.extend(["-keyout", &key, "-out", &csr]);
    openssl(&args, dir);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "server.ext",
            "-out",
            &crt,
        ],
        dir,
    );
    (dir.join(crt), dir.join(key))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_served_over_tls_with_auth_beyond_loopback() {
    let bin = headless_binary().expect("sutazai-headless");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (cert, key) = certificate(dir.path(), "server");
    let dead_llm = format!("http://127.0.0.1:{}", free_port().unwrap());

    // Half a configuration, and a key of another certificate: refused before serving.
    let mut half = headless_command(&bin, &dead_llm, free_port().unwrap(), &data);
    half.env("SUTAZAI_TLS_CERT", &cert).arg("serve");
    let out = half.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("SUTAZAI_TLS_KEY"), "{stderr}");
    let (_, other_key) = certificate(dir.path(), "other");
    let mut mismatched = headless_command(&bin, &dead_llm, free_port().unwrap(), &data);
    mismatched
        .env("SUTAZAI_TLS_CERT", &cert)
        .env("SUTAZAI_TLS_KEY", &other_key)
        .arg("serve");
    let out = mismatched.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("SUTAZAI_TLS_CERT / SUTAZAI_TLS_KEY"),
        "{stderr}"
    );
    println!(
        "mismatched key refused: {}",
        stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
    );

    // An admin API key made by the CLI, then the server on 0.0.0.0 over TLS.
    let port = free_port().unwrap();
    let made = headless_command(&bin, &dead_llm, port, &data)
        .args([
            "auth", "keys", "create", "--name", "tls", "--role", "admin", "--json",
        ])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let api_key = serde_json::from_slice::<Value>(&made.stdout).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // The chain file carries the CA too, so the CLI (which trusts that file) gets it.
    let chain = dir.path().join("chain.crt");
    let mut pem_chain = std::fs::read(&cert).unwrap();
    pem_chain.extend(std::fs::read(dir.path().join("ca.crt")).unwrap());
    std::fs::write(&chain, pem_chain).unwrap();
    let tls_env = |cmd: &mut Command| {
        cmd.env("ORCHESTRATION_API_HOST", "0.0.0.0")
            .env("SUTAZAI_TLS_CERT", &chain)
            .env("SUTAZAI_TLS_KEY", &key);
    };
    let mut cmd = headless_command(&bin, &dead_llm, port, &data);
    tls_env(&mut cmd);
    cmd.env_remove("ENABLE_AUTH")
        .stdout(Stdio::piped())
        .arg("serve");
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let _serve = Kill(vec![child]);

    let pem = std::fs::read(dir.path().join("ca.crt")).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{port}");
    let began = Instant::now();
    while client.get(format!("{base}/health")).send().await.is_err() {
        assert!(began.elapsed() < Duration::from_secs(60), "no HTTPS answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        line
    })
    .await
    .unwrap();
    assert_eq!(
        line.trim(),
        format!("SutazAI dashboard: https://127.0.0.1:{port}/")
    );

    let health = client.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let anonymous = client.get(format!("{base}/agents")).send().await.unwrap();
    assert_eq!(
        anonymous.status().as_u16(),
        401,
        "auth is on beyond loopback"
    );
    let (_, agents) = call_as(
        &client,
        reqwest::Method::GET,
        &format!("{base}/agents"),
        Some(&api_key),
        None,
    )
    .await;
    let count = agents["agents"].as_array().map_or(0, Vec::len);
    assert_eq!(count, 38, "total {}", agents["total"]);
    println!("https: /health 200, /agents 401 without a key, {count} agents with it");

    // Plain HTTP on the TLS port gets no answer; a client that does not trust the
    // certificate is refused.
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/health")).await;
    assert!(
        plain.as_ref().map_or(true, |r| !r.status().is_success()),
        "{plain:?}"
    );
    let untrusting = reqwest::get(format!("{base}/health")).await;
    assert!(untrusting.is_err(), "an unknown certificate must fail");

    // A WebSocket over TLS, authenticated with ?access_token=.
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let (mut socket, response) = tokio_tungstenite::connect_async_tls_with_config(
        format!("wss://127.0.0.1:{port}/ws?access_token={api_key}"),
        None,
        false,
        Some(tokio_tungstenite::Connector::Rustls(Arc::new(tls))),
    )
    .await
    .expect("wss upgrade");
    assert_eq!(response.status().as_u16(), 101);
    let first = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("a first message")
        .expect("open")
        .expect("a message");
    let first: Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
    println!("wss: 101, first message type {}", first["type"]);

    // The CLI's client commands reach it over TLS, trusting the configured chain.
    let mut status = headless_command(&bin, &dead_llm, port, &data);
    tls_env(&mut status);
    let out = status
        .env("SUTAZAI_API_TOKEN", &api_key)
        .args(["--json", "status"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let health = status
        .pointer("/status/status")
        .or_else(|| status.get("status"))
        .cloned()
        .unwrap_or_default();
    assert!(health.is_string(), "{status}");
    println!("cli: `sutazai status` over https: status {health}");
}
