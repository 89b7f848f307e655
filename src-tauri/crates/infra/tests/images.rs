//! The test harness itself (see `common`): the local images run, and a pushed image can be
//! pulled back from a `TestRegistry`. Needs a Docker engine; fails without one.

mod common;

use common::docker;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// On every container these tests start, per test: `remove_labelled` of one test must not
/// hit another test's containers, as the tests run in parallel.
const LABEL: &str = "sutazai-test=images";
const PUSH_LABEL: &str = "sutazai-test=images-push";

/// Removes the container named `name` when dropped.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn busybox_image_runs_echo() {
    common::require_docker();
    let image = common::busybox_image();
    assert!(image.starts_with("sutazai-test/busybox:"), "{image}");
    let out = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--label",
        LABEL,
        &image,
        "echo",
        "hello",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    // The same content gives the same tag: a second call (another process) reuses it.
    assert_eq!(common::busybox_image(), image);
}

#[test]
fn redis_image_serves_ping() {
    common::require_docker();
    let image = common::redis_image();
    assert!(image.starts_with("sutazai-test/redis:"), "{image}");
    let port = common::free_port().to_string();
    let name = format!("sutazai-test-images-redis-{port}");
    let container = Container(name.clone());
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        LABEL,
        "--network",
        "host",
        &image,
        "/usr/bin/redis-server",
        "--port",
        &port,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
    ]);

    // The image's own redis-cli, inside the container.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new("docker")
            .args(["exec", &name, "/usr/bin/redis-cli", "-p", &port, "ping"])
            .stdin(Stdio::null())
            .output()
            .expect("docker exec");
        if String::from_utf8_lossy(&out.stdout).trim() == "PONG" {
            break;
        }
        if Instant::now() > deadline {
            let logs = Command::new("docker").args(["logs", &name]).output();
            panic!(
                "redis in {image} did not answer PING on port {port}: {}{}\nlogs: {:?}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                logs.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    // And from the host, over the host network.
    let mut conn = TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(b"PING\r\n").unwrap();
    let mut reply = [0u8; 7];
    conn.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"+PONG\r\n");
    drop(container);
}

#[test]
fn pushed_image_pulls_back_from_the_registry() {
    common::require_docker();
    let registry = common::TestRegistry::start();
    // An image of its own (so that removing it locally really removes its layers), which
    // also exercises `binary_image`.
    let image = common::binary_image("images-push", Path::new("/bin/true"));
    assert!(image.starts_with("sutazai-test/images-push:"), "{image}");

    let reference = common::push(&image, &registry, "sutazai-test/images-push");
    assert!(
        reference.starts_with(&format!("{}/sutazai-test/images-push:", registry.addr)),
        "{reference}"
    );
    common::remove_image(&reference);
    common::remove_image(&image);
    let gone = Command::new("docker")
        .args(["image", "inspect", &reference])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(
        !gone.success(),
        "{reference} is still there after docker rmi"
    );

    docker(&["pull", &reference]);
    // What came back runs: the binary with its libraries, busybox's sh, /tmp, the CA bundle.
    docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--label",
        PUSH_LABEL,
        &reference,
        "/usr/local/bin/true",
    ]);
    let mut check = String::from("[ -x /bin/busybox ] && [ -d /tmp ] && echo ok");
    if Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
        check = format!("[ -s /etc/ssl/certs/ca-certificates.crt ] && {check}");
    }
    let out = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--label",
        PUSH_LABEL,
        &reference,
        "/bin/sh",
        "-c",
        &check,
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");

    common::remove_image(&reference);
    common::remove_labelled(PUSH_LABEL);
}
