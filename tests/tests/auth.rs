//! Authentication, roles and audit on a real `sutazai-headless serve` with `ENABLE_AUTH=true`
//! (issue 7): the auth matrix — every route × {no token, expired token, viewer, operator,
//! admin, API key} gets the documented status — then sessions (sign-in, refresh with
//! rotation, sign-out), revocation of a key ending its sessions, a key made by the CLI
//! picked up by the running server, WebSockets with `?access_token=`, the spec's `curl`
//! example, the audit log (every refusal and change recorded, the chain verified, an edit
//! found), auth forced for a non-loopback bind, and a weak secret refused.

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::{Client, Method};
use serde_json::{Value, json};
use sutazai_auth::{Role, TokenKind, Tokens};
use sutazai_tests::call_as as send;
use sutazai_tests::{Kill, free_port, headless_binary, headless_command, start_serve};

const SECRET: &str = "an-integration-test-secret-of-40-chars!!";

/// Who calls, in the matrix's column order.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Nobody,
    Expired,
    Viewer,
    Operator,
    Admin,
    /// An operator's API key sent as the bearer credential.
    ApiKey,
}

const COLUMNS: [Who; 6] = [
    Who::Nobody,
    Who::Expired,
    Who::Viewer,
    Who::Operator,
    Who::Admin,
    Who::ApiKey,
];

/// One route: method, template (as in the router and `/openapi.json`), a concrete path,
/// a body, and the least role (`None`: public).
struct Row {
    method: Method,
    template: &'static str,
    path: String,
    body: Option<Value>,
    needs: Option<Role>,
}

fn row(
    method: Method,
    template: &'static str,
    path: &str,
    body: Option<Value>,
    needs: Option<Role>,
) -> Row {
    Row {
        method,
        template,
        path: path.to_owned(),
        body,
        needs,
    }
}

fn routes() -> Vec<Row> {
    use Method as M;
    let v = Some(Role::Viewer);
    let o = Some(Role::Operator);
    let a = Some(Role::Admin);
    let task = "01a20000-0000-7000-8000-000000000000";
    vec![
        row(M::GET, "/health", "/health", None, None),
        row(M::GET, "/openapi.json", "/openapi.json", None, None),
        row(M::POST, "/auth/token", "/auth/token", Some(json!({})), None),
        row(
            M::POST,
            "/auth/refresh",
            "/auth/refresh",
            Some(json!({})),
            None,
        ),
        row(M::GET, "/status", "/status", None, v),
        row(M::GET, "/agents", "/agents", None, v),
        row(M::POST, "/agents", "/agents", Some(json!({})), o),
        row(
            M::GET,
            "/agents/{agent_id}",
            "/agents/no-such-agent",
            None,
            v,
        ),
        row(
            M::PUT,
            "/agents/{agent_id}",
            "/agents/no-such-agent",
            Some(json!({})),
            o,
        ),
        row(
            M::DELETE,
            "/agents/{agent_id}",
            "/agents/no-such-agent",
            None,
            o,
        ),
        row(
            M::GET,
            "/agents/{agent_id}/definition",
            "/agents/no-such-agent/definition",
            None,
            v,
        ),
        row(
            M::POST,
            "/agents/{agent_id}/control",
            "/agents/no-such-agent/control",
            Some(json!({"action": "restart"})),
            o,
        ),
        row(M::POST, "/tasks", "/tasks", Some(json!({})), o),
        row(M::GET, "/tasks", "/tasks", None, v),
        row(
            M::GET,
            "/tasks/{task_id}",
            &format!("/tasks/{task}"),
            None,
            v,
        ),
        row(
            M::DELETE,
            "/tasks/{task_id}",
            &format!("/tasks/{task}"),
            None,
            o,
        ),
        row(
            M::POST,
            "/tasks/{task_id}/approve",
            &format!("/tasks/{task}/approve"),
            Some(json!({"checkpoint": "x"})),
            o,
        ),
        row(
            M::POST,
            "/messages/send",
            "/messages/send",
            Some(json!({})),
            o,
        ),
        row(
            M::POST,
            "/messages/broadcast",
            "/messages/broadcast",
            Some(json!({})),
            o,
        ),
        row(
            M::GET,
            "/messages/dead-letters",
            "/messages/dead-letters",
            None,
            v,
        ),
        row(
            M::DELETE,
            "/messages/dead-letters",
            "/messages/dead-letters",
            None,
            o,
        ),
        row(
            M::GET,
            "/messages/dead-letters/{id}",
            "/messages/dead-letters/nope",
            None,
            v,
        ),
        row(
            M::DELETE,
            "/messages/dead-letters/{id}",
            "/messages/dead-letters/nope",
            None,
            o,
        ),
        row(
            M::POST,
            "/messages/dead-letters/{id}/replay",
            "/messages/dead-letters/nope/replay",
            None,
            o,
        ),
        row(M::GET, "/workers", "/workers", None, v),
        row(
            M::GET,
            "/infrastructure/status",
            "/infrastructure/status",
            None,
            v,
        ),
        row(
            M::POST,
            "/infrastructure/deploy-all",
            "/infrastructure/deploy-all",
            None,
            o,
        ),
        row(
            M::POST,
            "/infrastructure/services/{service_name}/control",
            "/infrastructure/services/redis/control",
            Some(json!({"action": "status"})),
            o,
        ),
        row(
            M::GET,
            "/infrastructure/services/{name}/logs",
            "/infrastructure/services/redis/logs",
            None,
            v,
        ),
        row(
            M::GET,
            "/infrastructure/containers/{name}/stats",
            "/infrastructure/containers/redis/stats",
            None,
            v,
        ),
        row(
            M::POST,
            "/infrastructure/images/pull",
            "/infrastructure/images/pull",
            Some(json!({})),
            o,
        ),
        row(
            M::GET,
            "/analytics/performance",
            "/analytics/performance",
            None,
            v,
        ),
        row(
            M::POST,
            "/orchestration/pause",
            "/orchestration/pause",
            None,
            o,
        ),
        row(
            M::POST,
            "/orchestration/resume",
            "/orchestration/resume",
            None,
            o,
        ),
        row(M::GET, "/setup/doctor", "/setup/doctor", None, v),
        row(M::GET, "/settings", "/settings", None, a),
        row(M::PUT, "/settings", "/settings", Some(json!({})), a),
        row(M::POST, "/models/pull", "/models/pull", Some(json!({})), o),
        row(M::GET, "/alerts", "/alerts", None, v),
        row(
            M::POST,
            "/alerts/{id}/acknowledge",
            "/alerts/999999/acknowledge",
            None,
            o,
        ),
        row(
            M::PUT,
            "/alerts/rules/{id}",
            "/alerts/rules/no_such_rule",
            Some(json!({})),
            a,
        ),
        row(M::GET, "/monitoring/host", "/monitoring/host", None, v),
        row(M::GET, "/monitoring/series", "/monitoring/series", None, v),
        row(
            M::GET,
            "/monitoring/series/catalogue",
            "/monitoring/series/catalogue",
            None,
            v,
        ),
        row(M::GET, "/metrics", "/metrics", None, v),
        row(M::GET, "/ws", "/ws", None, v),
        row(
            M::GET,
            "/ws/agent/{agent_id}",
            "/ws/agent/no-such-agent",
            None,
            v,
        ),
        row(M::GET, "/auth/whoami", "/auth/whoami", None, v),
        row(M::GET, "/auth/keys", "/auth/keys", None, a),
        row(
            M::POST,
            "/auth/keys",
            "/auth/keys",
            Some(json!({"name": "", "role": "viewer"})),
            a,
        ),
        row(
            M::DELETE,
            "/auth/keys/{id}",
            "/auth/keys/no-such-key",
            None,
            a,
        ),
        row(M::GET, "/audit", "/audit", None, a),
        row(M::GET, "/audit/verify", "/audit/verify", None, a),
        // Last: it revokes the caller's own access token.
        row(M::POST, "/auth/revoke", "/auth/revoke", None, v),
    ]
}

/// Polls `GET /agents` with `bearer` until it answers `want`; fails after 10 s with `why`.
async fn until_status(client: &Client, base: &str, bearer: &str, want: u16, why: &str) {
    let began = Instant::now();
    loop {
        let (status, _) = send(
            client,
            Method::GET,
            &format!("{base}/agents"),
            Some(bearer),
            None,
        )
        .await;
        if status == want {
            return;
        }
        assert!(began.elapsed() < Duration::from_secs(10), "{why}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sign_in(client: &Client, base: &str, key: &str) -> Value {
    let (status, body) = send(
        client,
        Method::POST,
        &format!("{base}/auth/token"),
        None,
        Some(&json!({"api_key": key})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn cli(bin: &std::path::Path, data: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(bin)
        .args(args)
        .env("SUTAZAI_DATA_DIR", data)
        .env("ENABLE_AUTH", "true")
        .env("JWT_SECRET_KEY", SECRET)
        .env_remove("SUTAZAI_CONFIG")
        .env("XDG_CONFIG_HOME", data.join("no-config"))
        .output()
        .expect("run the CLI");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn key_of(text: &str) -> String {
    text.split_whitespace()
        .find(|w| w.starts_with("szk_"))
        .expect("a key in the output")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_matrix_sessions_revocation_and_audit() {
    let bin = headless_binary().expect("build sutazai-headless");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("agents")).unwrap();
    // Keys for every role, made by the CLI before the server starts (the first admin key
    // can only come from there).
    let admin_key = key_of(&cli(
        &bin,
        &data,
        &[
            "auth", "keys", "create", "--name", "admin", "--role", "admin",
        ],
    ));
    let operator_key = key_of(&cli(
        &bin,
        &data,
        &[
            "auth", "keys", "create", "--name", "ops", "--role", "operator",
        ],
    ));
    let viewer_key = key_of(&cli(
        &bin,
        &data,
        &[
            "auth", "keys", "create", "--name", "watcher", "--role", "viewer",
        ],
    ));

    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let dead_llm = format!("http://127.0.0.1:{}", free_port().unwrap());
    let mut cmd = headless_command(&bin, &dead_llm, port, &data);
    cmd.env("ENABLE_AUTH", "true")
        .env("JWT_SECRET_KEY", SECRET)
        .env("SESSION_TIMEOUT", "600");
    let _serve: Kill = start_serve(cmd, &base).await;
    let client = Client::new();

    let viewer = sign_in(&client, &base, &viewer_key).await;
    let operator = sign_in(&client, &base, &operator_key).await;
    let admin = sign_in(&client, &base, &admin_key).await;
    assert_eq!(
        (viewer["role"].as_str(), viewer["expires_in"].as_u64()),
        (Some("viewer"), Some(600))
    );
    let tokens = Tokens::new(
        SECRET.as_bytes(),
        Duration::from_secs(60),
        Duration::from_secs(60),
    )
    .unwrap();
    let expired = tokens
        .mint(
            "key:admin",
            Role::Admin,
            None,
            TokenKind::Access,
            chrono_now() - 7200,
            Duration::from_secs(3600),
        )
        .unwrap();
    let token = |who: Who| -> Option<String> {
        match who {
            Who::Nobody => None,
            Who::Expired => Some(expired.clone()),
            Who::Viewer => viewer["access_token"].as_str().map(str::to_owned),
            Who::Operator => operator["access_token"].as_str().map(str::to_owned),
            Who::Admin => admin["access_token"].as_str().map(str::to_owned),
            Who::ApiKey => Some(operator_key.clone()),
        }
    };

    // Every route of the OpenAPI document is in the matrix (a new route must be added).
    let (_, document) = send(
        &client,
        Method::GET,
        &format!("{base}/openapi.json"),
        None,
        None,
    )
    .await;
    let table = routes();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            assert!(
                table
                    .iter()
                    .any(|r| r.template == path && r.method == method),
                "{method} {path} is in /openapi.json but not in the auth matrix"
            );
        }
    }

    println!(
        "{:<8} {:<48} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "METHOD", "ROUTE", "none", "expired", "viewer", "operator", "admin", "api key"
    );
    let mut checked = 0;
    let mut refusals = 0;
    for r in &table {
        let mut cells = Vec::new();
        for who in COLUMNS {
            let bearer = token(who);
            let (status, body) = send(
                &client,
                r.method.clone(),
                &format!("{base}{}", r.path),
                bearer.as_deref(),
                r.body.as_ref(),
            )
            .await;
            let role = match who {
                Who::Viewer => Some(Role::Viewer),
                Who::Operator | Who::ApiKey => Some(Role::Operator),
                Who::Admin => Some(Role::Admin),
                Who::Nobody | Who::Expired => None,
            };
            let expected_code = match (r.needs, who, role) {
                (None, _, _) => None,
                (Some(_), Who::Nobody, _) => Some((401, "unauthorized")),
                (Some(_), Who::Expired, _) => Some((401, "token_expired")),
                (Some(needed), _, Some(role)) if role < needed => Some((403, "forbidden")),
                _ => None,
            };
            match expected_code {
                Some((want, code)) => {
                    refusals += 1;
                    assert_eq!(
                        (status, body["code"].as_str()),
                        (want, Some(code)),
                        "{} {} as {who:?}: {body}",
                        r.method,
                        r.path
                    );
                    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
                }
                None => assert!(
                    status != 401 && status != 403 && status < 500
                        || (status == 503 && r.path.starts_with("/infrastructure")),
                    "{} {} as {who:?} should pass authorisation: {status} {body}",
                    r.method,
                    r.path
                ),
            }
            checked += 1;
            cells.push(status.to_string());
        }
        println!(
            "{:<8} {:<48} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            r.method.as_str(),
            r.template,
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5]
        );
    }
    println!(
        "auth matrix: {} routes x {} credentials = {checked} calls, {refusals} refused as documented",
        table.len(),
        COLUMNS.len()
    );

    // The revoke row signed every JWT column out: those tokens are dead now.
    for who in [Who::Viewer, Who::Operator, Who::Admin] {
        let (status, body) = send(
            &client,
            Method::GET,
            &format!("{base}/agents"),
            token(who).as_deref(),
            None,
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("token_revoked")),
            "{who:?}"
        );
    }

    // The spec's example, with curl.
    let admin = sign_in(&client, &base, &admin_key).await;
    let access = admin["access_token"].as_str().unwrap().to_owned();
    let out = Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            "-H",
            &format!("Authorization: Bearer {access}"),
            &format!("{base}/agents"),
        ])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    let (json_text, code) = text.rsplit_once('\n').unwrap();
    let agents: Value = serde_json::from_str(json_text).unwrap();
    assert_eq!(code, "200");
    println!(
        "curl -H \"Authorization: Bearer …\" {base}/agents → {code}, {} agents",
        agents["agents"].as_array().unwrap().len()
    );
    // X-API-Key works too.
    let response = client
        .get(format!("{base}/agents"))
        .header("X-API-Key", &viewer_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    // Refresh rotates: the new pair works, the old refresh token is refused.
    let ops = sign_in(&client, &base, &operator_key).await;
    let (status, fresh) = send(
        &client,
        Method::POST,
        &format!("{base}/auth/refresh"),
        None,
        Some(&json!({"refresh_token": ops["refresh_token"]})),
    )
    .await;
    assert_eq!(status, 200, "{fresh}");
    let (status, again) = send(
        &client,
        Method::POST,
        &format!("{base}/auth/refresh"),
        None,
        Some(&json!({"refresh_token": ops["refresh_token"]})),
    )
    .await;
    assert_eq!(
        (status, again["code"].as_str()),
        (401, Some("token_revoked")),
        "{again}"
    );
    let (status, _) = send(
        &client,
        Method::GET,
        &format!("{base}/tasks"),
        fresh["access_token"].as_str(),
        None,
    )
    .await;
    assert_eq!(status, 200);
    // An access token where a refresh token is needed.
    let (status, wrong) = send(
        &client,
        Method::POST,
        &format!("{base}/auth/refresh"),
        None,
        Some(&json!({"refresh_token": fresh["access_token"]})),
    )
    .await;
    assert_eq!(
        (status, wrong["code"].as_str()),
        (401, Some("invalid_token")),
        "{wrong}"
    );
    println!("refresh: new pair issued; the old refresh token answered 401 token_revoked on reuse");

    // Sign-out with the refresh token ends both.
    let (status, out) = send(
        &client,
        Method::POST,
        &format!("{base}/auth/revoke"),
        fresh["access_token"].as_str(),
        Some(&json!({"token": fresh["refresh_token"]})),
    )
    .await;
    assert_eq!((status, out["revoked"].as_u64()), (200, Some(2)), "{out}");
    let (status, _) = send(
        &client,
        Method::POST,
        &format!("{base}/auth/refresh"),
        None,
        Some(&json!({"refresh_token": fresh["refresh_token"]})),
    )
    .await;
    assert_eq!(status, 401);

    // Keys through the API: created (secret once), used, listed without secrets, revoked —
    // and the sessions opened with it end at once.
    let (status, made) = send(
        &client,
        Method::POST,
        &format!("{base}/auth/keys"),
        Some(&access),
        Some(&json!({"name": "ci pipeline", "role": "operator"})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let new_key = made["key"].as_str().unwrap().to_owned();
    let session = sign_in(&client, &base, &new_key).await;
    let (status, listed) = send(
        &client,
        Method::GET,
        &format!("{base}/auth/keys"),
        Some(&access),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        !listed.to_string().contains(&new_key[12..]),
        "a listing never shows a key's secret"
    );
    let (status, _) = send(
        &client,
        Method::DELETE,
        &format!("{base}/auth/keys/{}", made["id"].as_str().unwrap()),
        Some(&access),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = send(
        &client,
        Method::GET,
        &format!("{base}/agents"),
        Some(&new_key),
        None,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_credentials"))
    );
    let (status, body) = send(
        &client,
        Method::GET,
        &format!("{base}/agents"),
        session["access_token"].as_str(),
        None,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_revoked")),
        "a revoked key's sessions end"
    );
    println!(
        "API key revoked through the API: the key → 401 invalid_credentials, its session → 401 token_revoked"
    );

    // A key the CLI makes while the server runs works within seconds; one it revokes stops.
    let late = key_of(&cli(
        &bin,
        &data,
        &[
            "auth", "keys", "create", "--name", "late", "--role", "viewer",
        ],
    ));
    let began = Instant::now();
    until_status(
        &client,
        &base,
        &late,
        200,
        "the server never picked up the CLI's key",
    )
    .await;
    println!(
        "a key created by `sutazai auth keys create` while serving worked after {:.1}s",
        began.elapsed().as_secs_f64()
    );
    let (_, listed) = send(
        &client,
        Method::GET,
        &format!("{base}/auth/keys"),
        Some(&access),
        None,
    )
    .await;
    let late_id = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "late")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    cli(&bin, &data, &["auth", "keys", "revoke", &late_id]);
    until_status(
        &client,
        &base,
        &late,
        401,
        "the server kept accepting a key the CLI revoked",
    )
    .await;

    // WebSockets: refused without a token, opened with `?access_token=`.
    let ws = format!("ws://127.0.0.1:{port}/ws");
    match tokio_tungstenite::connect_async(&ws).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 401)
        }
        other => panic!("a /ws without a token must be refused: {other:?}"),
    }
    let (mut socket, response) =
        tokio_tungstenite::connect_async(format!("{ws}?access_token={access}"))
            .await
            .expect("ws with a token");
    assert_eq!(response.status().as_u16(), 101);
    let _ = socket.close(None).await;
    println!("/ws: 401 without a token, 101 with ?access_token=");

    // An open socket ends when its credential does: signed out while it listens.
    let session = sign_in(&client, &base, &viewer_key).await;
    let token = session["access_token"].as_str().unwrap().to_owned();
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{ws}?access_token={token}"))
        .await
        .expect("ws with a token");
    let (status, out) = send(
        &client,
        Method::POST,
        &format!("{base}/auth/revoke"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!((status, out["revoked"].as_u64()), (200, Some(1)), "{out}");
    let revoked_at = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        use futures::StreamExt as _;
        while let Some(frame) = socket.next().await {
            let Ok(tokio_tungstenite::tungstenite::Message::Text(text)) = frame else {
                continue;
            };
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if v["code"] == "session_ended" {
                return true;
            }
        }
        false
    })
    .await
    .expect("the socket ended within 10 s");
    assert!(ended, "a session_ended notice before the close");
    println!(
        "/ws opened with a token that was then revoked: session_ended after {:.1}s",
        revoked_at.elapsed().as_secs_f64()
    );

    // The audit log: the refusals and changes are there with who, what, from where; the
    // chain verifies.
    let (status, page) = send(
        &client,
        Method::GET,
        &format!("{base}/audit?limit=1000"),
        Some(&access),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let entries = page["entries"].as_array().unwrap();
    let denied = entries.iter().filter(|e| e["outcome"] == "denied").count();
    assert!(
        denied >= refusals,
        "{denied} denied entries for {refusals} refusals in the matrix"
    );
    let key_created = entries
        .iter()
        .find(|e| e["method"] == "POST" && e["path"] == "/auth/keys" && e["status"] == 201)
        .expect("the key creation is audited");
    assert_eq!(
        (key_created["actor"].as_str(), key_created["role"].as_str()),
        (Some("key:admin"), Some("admin"))
    );
    assert!(
        key_created["peer"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    let forbidden = entries
        .iter()
        .find(|e| e["status"] == 403 && e["actor"] == "key:watcher")
        .expect("a viewer's refusal is audited with who it was");
    assert_eq!(forbidden["detail"], "forbidden");
    assert!(
        !page.to_string().contains("access_token="),
        "query strings (tokens) stay out of the log"
    );
    let (_, report) = send(
        &client,
        Method::GET,
        &format!("{base}/audit/verify"),
        Some(&access),
        None,
    )
    .await;
    assert_eq!(report["ok"], true, "{report}");
    println!(
        "audit: {} entries, {denied} denied; chain verified ok, head {}",
        report["entries"], report["head_hash"]
    );
    drop(_serve);

    // Tampering with a stored entry is found, by the CLI too.
    let db = rusqlite_free_edit(&data.join("auth.sqlite3"));
    let out = Command::new(&bin)
        .args(["audit", "verify"])
        .env("SUTAZAI_DATA_DIR", &data)
        .env("XDG_CONFIG_HOME", data.join("no-config"))
        .env_remove("SUTAZAI_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("BROKEN at entry #{db}")), "{text}");
    println!(
        "after editing entry #{db} with sqlite3: `sutazai audit verify` → {}",
        text.trim()
    );
}

/// Changes one stored audit entry's status behind the server's back (with the sqlite3
/// Python module, as an attacker with file access would) and returns its seq.
fn rusqlite_free_edit(path: &std::path::Path) -> i64 {
    let script = format!(
        "import sqlite3; c = sqlite3.connect({:?}); c.execute('UPDATE audit SET status = 200 WHERE seq = 5'); c.commit(); print(5)",
        path.display().to_string()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn a_non_loopback_bind_forces_auth_and_a_weak_secret_is_refused() {
    let bin = headless_binary().expect("build sutazai-headless");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("agents")).unwrap();
    let dead_llm = format!("http://127.0.0.1:{}", free_port().unwrap());

    // The spec's placeholder secret is refused before anything starts.
    let port = free_port().unwrap();
    let out = headless_command(&bin, &dead_llm, port, &data)
        .env("ENABLE_AUTH", "true")
        .env("JWT_SECRET_KEY", "your-secret-key")
        .arg("serve")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("JWT_SECRET_KEY is 15 bytes long; it must be at least 32"),
        "{stderr}"
    );
    assert!(!data.join("auth.sqlite3").exists(), "nothing was started");

    // 0.0.0.0 without ENABLE_AUTH: auth is on anyway, with a generated 0600 secret.
    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut cmd = headless_command(&bin, &dead_llm, port, &data);
    cmd.env("ORCHESTRATION_API_HOST", "0.0.0.0")
        .env_remove("ENABLE_AUTH")
        .env_remove("JWT_SECRET_KEY");
    let _serve = start_serve(cmd, &base).await;
    let client = Client::new();
    let (status, body) = send(&client, Method::GET, &format!("{base}/agents"), None, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
    let (status, _) = send(&client, Method::GET, &format!("{base}/health"), None, None).await;
    assert_eq!(status, 200);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(data.join("jwt-secret"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(data.join("auth.sqlite3"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    println!(
        "0.0.0.0 bind without ENABLE_AUTH: GET /agents → 401; jwt-secret and auth.sqlite3 are 0600"
    );

    // Beyond loopback the default rate limit (200/s per client, bursts of 400) applies: a
    // burst of 1,000 requests from one client is cut off with 429 and Retry-After.
    let answers = futures::future::join_all((0..1000).map(|_| {
        let client = client.clone();
        let url = format!("{base}/health");
        async move {
            let r = client.get(url).send().await.expect("request");
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            (status, retry, body)
        }
    }))
    .await;
    let ok = answers.iter().filter(|a| a.0 == 200).count();
    let limited: Vec<_> = answers.iter().filter(|a| a.0 == 429).collect();
    assert_eq!(ok + limited.len(), 1000, "only 200 or 429");
    assert!(ok >= 400, "the burst allowance is 400: {ok} passed");
    assert!(
        limited.len() >= 300,
        "only {} of 1,000 were limited",
        limited.len()
    );
    for (_, retry, body) in &limited {
        assert_eq!(body["code"], "rate_limited");
        assert!(
            retry
                .as_deref()
                .is_some_and(|r| r.parse::<u64>().unwrap() >= 1)
        );
    }
    println!(
        "rate limit beyond loopback: 1,000 requests at once → {ok} answered, {} refused 429 rate_limited with Retry-After",
        limited.len()
    );
}
