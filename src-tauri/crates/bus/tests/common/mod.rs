//! Test support shared by the bus's integration tests: a real `redis-server`.
//!
//! When `SUTAZAI_TEST_REDIS_URL` is set (`.ci/run` starts one), tests use that server, each
//! under its own key namespace. Otherwise each test starts its own `redis-server` on a free
//! loopback port with AOF on, and stops it when dropped. A missing `redis-server` fails the
//! test: the Redis backend is never silently skipped.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sutazai_bus::{Delivery, Subscription};

/// A Redis to test against.
#[derive(Debug)]
pub struct TestRedis {
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
    /// Its port.
    pub port: u16,
    server: Option<Child>,
    dir: Option<tempfile::TempDir>,
}

impl TestRedis {
    /// The shared server from the environment, or a fresh private one.
    pub fn get() -> TestRedis {
        match std::env::var("SUTAZAI_TEST_REDIS_URL") {
            Ok(url) if !url.is_empty() => TestRedis {
                port: url
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.trim_end_matches('/').parse().ok())
                    .unwrap_or(6379),
                url,
                server: None,
                dir: None,
            },
            _ => TestRedis::private(),
        }
    }

    /// A private `redis-server` (AOF on) that this value owns.
    pub fn private() -> TestRedis {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut redis = TestRedis {
            url: format!("redis://127.0.0.1:{port}"),
            port,
            server: None,
            dir: Some(dir),
        };
        redis.start();
        redis
    }

    fn dir(&self) -> PathBuf {
        self.dir
            .as_ref()
            .expect("private server")
            .path()
            .to_path_buf()
    }

    /// Starts the private server (again) on its port and directory.
    pub fn start(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--dir",
                &self.dir().to_string_lossy(),
                "--appendonly",
                "yes",
                "--save",
                "",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        self.server = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.ping() {
            assert!(Instant::now() < deadline, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the private server gracefully (it writes its AOF) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = Command::new("redis-cli")
                .args(["-p", &self.port.to_string(), "shutdown"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the private server with SIGKILL (no shutdown, no final AOF write) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn ping(&self) -> bool {
        Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "ping"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
            .unwrap_or(false)
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A key namespace no other test uses.
pub fn namespace(test: &str) -> String {
    format!("t{}:{test}", sutazai_core::ids::new_id())
}

/// The next delivery within `within`, if any.
pub async fn recv(sub: &mut Subscription, within: Duration) -> Option<Delivery> {
    tokio::time::timeout(within, sub.next())
        .await
        .ok()
        .flatten()
}

/// The next delivery; fails the test after 5 s without one.
pub async fn expect(sub: &mut Subscription) -> Delivery {
    recv(sub, Duration::from_secs(5))
        .await
        .expect("a delivery within 5 s")
}
