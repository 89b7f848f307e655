//! Test support shared by the infra crate's integration tests: a real Docker engine, small
//! local images and a local image registry.
//!
//! Nothing here reaches the internet. Images are built `FROM scratch` out of files already on
//! this machine (Debian's static busybox, the host's `redis-server`, any dynamically linked
//! binary plus the libraries `ldd` lists for it) and tagged with a hash of their contents, so
//! an image that already exists is reused instead of rebuilt. `TestRegistry` runs Debian's
//! `docker-registry` on a free loopback port (Docker allows plain HTTP to 127.0.0.0/8
//! registries by default), unless `SUTAZAI_TEST_REGISTRY` names one to share.
//!
//! A missing Docker engine fails the test: the Docker paths are never silently skipped.
//! Missing Debian packages (`busybox-static`, `docker-registry`) are installed with apt.
//!
//! Everything here blocks (it drives the `docker` CLI): call it before a test's async part,
//! or through `tokio::task::spawn_blocking`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Debian's `busybox-static` puts its binary here.
const BUSYBOX: &str = "/bin/busybox";
/// The applets linked into the busybox image's `/bin`.
const BUSYBOX_APPLETS: &[&str] = &["sh", "sleep", "echo", "cat", "wget", "nc", "true", "false"];
const REDIS_SERVER: &str = "/usr/bin/redis-server";
const REDIS_CLI: &str = "/usr/bin/redis-cli";
/// Debian's `docker-registry` (the CNCF distribution registry, v2).
const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

// --- docker ---------------------------------------------------------------------------------

/// Panics, with a clear message, unless a Docker engine answers `docker info`.
pub fn require_docker() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let out = Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "these tests need a running Docker engine, and `docker info` failed: {}\n\
                 start one (scripts/test.sh does: `setsid dockerd --storage-driver=vfs \
                 --iptables=false --bridge=none &`)",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => panic!(
                "these tests need Docker, and the `docker` CLI could not be run: {e} \
                 (install docker.io: `bash scripts/setup.sh --test`)"
            ),
        }
    });
}

/// Runs `docker args…`, panicking with its output when it fails.
pub fn docker(args: &[&str]) -> Output {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("could not run docker {args:?}: {e}"));
    assert!(
        out.status.success(),
        "docker {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `docker args…` and reports whether it succeeded; output is discarded.
fn docker_ok(args: &[&str]) -> bool {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The non-empty lines `docker args…` prints.
fn docker_lines(args: &[&str]) -> Vec<String> {
    String::from_utf8_lossy(&docker(args).stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

fn image_exists(reference: &str) -> bool {
    docker_ok(&["image", "inspect", "--format", "{{.Id}}", reference])
}

// --- host packages ----------------------------------------------------------------------------

/// Makes sure `path` exists, installing the Debian package `package` with apt when it does not.
fn ensure_package(package: &str, path: &str) {
    static APT: Mutex<()> = Mutex::new(());
    if Path::new(path).exists() {
        return;
    }
    let _apt = APT.lock().unwrap_or_else(|e| e.into_inner());
    if Path::new(path).exists() {
        return;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let apt = |args: &[&str]| {
        let mut cmd = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.args(["-n", "apt-get"]);
            sudo
        };
        cmd.env("DEBIAN_FRONTEND", "noninteractive")
            .args(["-q", "-y", "-o", "DPkg::Lock::Timeout=300"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let install = ["install", "--no-install-recommends", package];
    if !apt(&install) {
        // A fresh machine may have no package lists yet.
        apt(&["update"]);
        apt(&install);
    }
    assert!(
        Path::new(path).exists(),
        "{path} is missing and `apt-get install {package}` did not provide it; \
         run `bash scripts/setup.sh --test`"
    );
}

// --- image building ---------------------------------------------------------------------------

/// What goes into an image: files (copied from the host, symlinks followed), symlinks,
/// empty directories, and its default command.
#[derive(Debug, Default)]
struct Rootfs {
    /// Path in the image → path on the host.
    files: BTreeMap<String, PathBuf>,
    /// Path in the image → link target.
    links: BTreeMap<String, String>,
    dirs: Vec<String>,
    cmd: Vec<String>,
}

impl Rootfs {
    fn file(&mut self, image_path: &str, host: impl Into<PathBuf>) {
        self.files.insert(image_path.to_string(), host.into());
    }

    fn link(&mut self, image_path: &str, target: &str) {
        self.links
            .insert(image_path.to_string(), target.to_string());
    }

    fn busybox(&mut self, applets: &[&str]) {
        ensure_package("busybox-static", BUSYBOX);
        self.file(BUSYBOX, BUSYBOX);
        for applet in applets {
            self.link(&format!("/bin/{applet}"), "busybox");
        }
    }

    /// `binary` at `image_path`, plus every library `ldd` lists for it and the loader.
    fn dynamic(&mut self, image_path: &str, binary: &Path) {
        self.file(image_path, binary);
        for lib in ldd(binary) {
            let at = lib.to_string_lossy().into_owned();
            self.file(&at, lib);
        }
    }

    /// A short hash of everything that goes in: contents and paths of the files, the
    /// links, the directories and the command.
    fn content_hash(&self) -> String {
        let mut manifest = String::new();
        if !self.files.is_empty() {
            let out = Command::new("sha256sum")
                .arg("--")
                .args(self.files.values())
                .stdin(Stdio::null())
                .output()
                .expect("run sha256sum");
            assert!(
                out.status.success(),
                "sha256sum failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let sums: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
                .collect();
            assert_eq!(sums.len(), self.files.len(), "sha256sum output: {sums:?}");
            for (image_path, sum) in self.files.keys().zip(sums) {
                manifest.push_str(&format!("file {image_path} {sum}\n"));
            }
        }
        for (image_path, target) in &self.links {
            manifest.push_str(&format!("link {image_path} {target}\n"));
        }
        for dir in &self.dirs {
            manifest.push_str(&format!("dir {dir}\n"));
        }
        manifest.push_str(&format!("cmd {:?}\n", self.cmd));
        sha256_hex(manifest.as_bytes())[..12].to_string()
    }

    /// Builds the image as `tag` unless an image with that tag already exists.
    fn build(&self, tag: &str) {
        if image_exists(tag) {
            return;
        }
        let work = tempfile::tempdir().expect("tempdir");
        let root = work.path().join("rootfs");
        std::fs::create_dir_all(&root).expect("create rootfs");
        let inside = |image_path: &str| root.join(image_path.trim_start_matches('/'));
        for dir in &self.dirs {
            std::fs::create_dir_all(inside(dir)).expect("create a directory in the rootfs");
        }
        for (image_path, host) in &self.files {
            let dest = inside(image_path);
            std::fs::create_dir_all(dest.parent().expect("parent")).expect("create dirs");
            // `copy` follows symlinks and keeps the permission bits.
            std::fs::copy(host, &dest)
                .unwrap_or_else(|e| panic!("copy {} into the image: {e}", host.display()));
        }
        for (image_path, target) in &self.links {
            let dest = inside(image_path);
            std::fs::create_dir_all(dest.parent().expect("parent")).expect("create dirs");
            std::os::unix::fs::symlink(target, &dest).expect("create a symlink in the rootfs");
        }
        // /tmp, as in any root file system: world-writable and sticky.
        for dir in &self.dirs {
            if dir == "/tmp" {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(inside(dir), std::fs::Permissions::from_mode(0o1777))
                    .expect("chmod /tmp");
            }
        }
        let tar = work.path().join("rootfs.tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .args(["--numeric-owner", "--owner=0", "--group=0", "-cf"])
            .arg(&tar)
            .arg(".")
            .status()
            .expect("run tar");
        assert!(status.success(), "tar of the image's rootfs failed");
        // `docker import` makes a one-layer image with no parent, which is what a
        // `FROM scratch` + `COPY` Dockerfile gives, without needing a builder (the engine
        // here has no buildx, and the legacy builder is deprecated).
        let cmd = format!(
            "CMD {}",
            serde_json::to_string(&self.cmd).expect("CMD as JSON")
        );
        docker(&[
            "import",
            "--change",
            &cmd,
            tar.to_str().expect("utf-8 temp path"),
            tag,
        ]);
    }
}

/// The libraries (and the dynamic loader) `ldd` lists for `binary`; none for a static one.
fn ldd(binary: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd")
        .arg(binary)
        .stdin(Stdio::null())
        .output()
        .expect("run ldd");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if text.contains("not a dynamic executable") || stderr.contains("not a dynamic executable")
        {
            return Vec::new();
        }
        panic!("ldd {} failed: {stderr}", binary.display());
    }
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.contains("statically linked") {
            continue;
        }
        assert!(
            !line.contains("not found"),
            "ldd {}: a library is missing: {line}",
            binary.display()
        );
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x…)"; "linux-vdso.so.1 (0x…)" has no file.
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(path));
        }
    }
    libs
}

/// Hex SHA-256 of `data`, through the `sha256sum` CLI.
fn sha256_hex(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sha256sum");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(data)
        .expect("write to sha256sum");
    let out = child.wait_with_output().expect("sha256sum");
    assert!(out.status.success(), "sha256sum failed");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a sha256sum line")
        .to_string()
}

fn build_image(repo: &str, rootfs: &Rootfs) -> String {
    require_docker();
    let tag = format!("sutazai-test/{repo}:{}", rootfs.content_hash());
    rootfs.build(&tag);
    tag
}

/// `sutazai-test/busybox:<hash>`: `FROM scratch` with Debian's static busybox at
/// `/bin/busybox` and `sh`, `sleep`, `echo`, `cat`, `wget`, `nc`, `true`, `false` linked
/// to it. Default command `/bin/sh`. Built once per process; reused when it exists.
pub fn busybox_image() -> String {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let mut rootfs = Rootfs::default();
            rootfs.busybox(BUSYBOX_APPLETS);
            rootfs.dirs.push("/tmp".into());
            rootfs.cmd = vec!["/bin/sh".into()];
            build_image("busybox", &rootfs)
        })
        .clone()
}

/// `sutazai-test/redis:<hash>`: `FROM scratch` with the host's `redis-server` and
/// `redis-cli`, their libraries and the loader at their host paths, and `/data` (the working
/// directory of the default command) and `/tmp`. The default command serves on 6379 without
/// persistence; callers usually pass their own.
pub fn redis_image() -> String {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            for bin in [REDIS_SERVER, REDIS_CLI] {
                assert!(
                    Path::new(bin).exists(),
                    "{bin} is missing: install redis-server (`bash scripts/setup.sh`)"
                );
            }
            let mut rootfs = Rootfs::default();
            rootfs.dynamic(REDIS_SERVER, Path::new(REDIS_SERVER));
            rootfs.dynamic(REDIS_CLI, Path::new(REDIS_CLI));
            rootfs.dirs.extend(["/data".into(), "/tmp".into()]);
            rootfs.cmd = [
                REDIS_SERVER,
                "--port",
                "6379",
                "--bind",
                "0.0.0.0",
                "--protected-mode",
                "no",
                "--dir",
                "/data",
                "--save",
                "",
            ]
            .map(String::from)
            .to_vec();
            build_image("redis", &rootfs)
        })
        .clone()
}

/// `sutazai-test/<name>:<hash>`: `FROM scratch` with the dynamically linked `binary` at
/// `/usr/local/bin/<file name>` (also its default command), its libraries and the loader,
/// the CA bundle when the host has one, `/tmp`, and busybox at `/bin/busybox` and `/bin/sh`
/// (plus the other busybox applets) for health checks. Reused when it exists.
pub fn binary_image(name: &str, binary: &Path) -> String {
    let file_name = binary
        .file_name()
        .unwrap_or_else(|| panic!("{} has no file name", binary.display()))
        .to_string_lossy()
        .into_owned();
    assert!(
        binary.is_file(),
        "{} is not a file (build it first?)",
        binary.display()
    );
    let at = format!("/usr/local/bin/{file_name}");
    let mut rootfs = Rootfs::default();
    rootfs.dynamic(&at, binary);
    if Path::new(CA_BUNDLE).exists() {
        rootfs.file(CA_BUNDLE, CA_BUNDLE);
    }
    rootfs.busybox(BUSYBOX_APPLETS);
    rootfs.dirs.push("/tmp".into());
    rootfs.cmd = vec![at];
    build_image(name, &rootfs)
}

// --- registry ---------------------------------------------------------------------------------

/// An image registry (distribution v2, plain HTTP on loopback) to push to and pull from.
#[derive(Debug)]
pub struct TestRegistry {
    /// `127.0.0.1:PORT` (or whatever `SUTAZAI_TEST_REGISTRY` says): the prefix of image
    /// references in this registry.
    pub addr: String,
    server: Option<Child>,
    dir: Option<tempfile::TempDir>,
}

impl TestRegistry {
    /// The shared registry named by `SUTAZAI_TEST_REGISTRY` (`host:port`), or a private
    /// `docker-registry` on a free loopback port, storing into a temp dir, stopped on drop.
    pub fn start() -> TestRegistry {
        require_docker();
        if let Ok(addr) = std::env::var("SUTAZAI_TEST_REGISTRY") {
            let addr = addr
                .trim()
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .trim_end_matches('/')
                .to_string();
            if !addr.is_empty() {
                return TestRegistry {
                    addr,
                    server: None,
                    dir: None,
                };
            }
        }
        ensure_package("docker-registry", DOCKER_REGISTRY);
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("create the registry's storage");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {addr}\n",
                storage.display()
            ),
        )
        .expect("write the registry's config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("registry log");
        let server = Command::new(DOCKER_REGISTRY)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {DOCKER_REGISTRY}: {e}"));
        let mut registry = TestRegistry {
            addr,
            server: Some(server),
            dir: Some(dir),
        };
        registry.wait_ready();
        registry
    }

    /// Waits until `GET /v2/` answers 200.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if http_get_status(&self.addr, "/v2/") == Some(200) {
                return;
            }
            if let Some(server) = self.server.as_mut()
                && let Ok(Some(status)) = server.try_wait()
            {
                panic!(
                    "docker-registry exited ({status}) before serving:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the registry at {} did not answer GET /v2/ within 30 s:\n{}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The private registry's log (empty for a shared one).
    pub fn log(&self) -> String {
        self.dir
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.path().join("registry.log")).ok())
            .unwrap_or_default()
    }

    /// `addr/repo:tag`.
    pub fn reference(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.addr)
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

/// The status code of a plain HTTP/1.0 `GET path` to `addr`, if it answers at all.
fn http_get_status(addr: &str, path: &str) -> Option<u16> {
    let sock = addr.parse().ok()?;
    let mut stream = TcpStream::connect_timeout(&sock, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).ok()?;
    let line = String::from_utf8_lossy(&head[..n]).into_owned();
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Tags `image` into `registry` as `repo` (keeping its tag) and pushes it; returns the
/// `addr/repo:tag` reference.
pub fn push(image: &str, registry: &TestRegistry, repo: &str) -> String {
    require_docker();
    let tag = image
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .map_or("latest", |(_, t)| t);
    let reference = registry.reference(repo, tag);
    docker(&["tag", image, &reference]);
    docker(&["push", &reference]);
    reference
}

/// `docker rmi -f reference`; errors (such as no such image) are ignored.
pub fn remove_image(reference: &str) {
    let _ = docker_ok(&["rmi", "-f", reference]);
}

/// Force-removes every container, volume and network carrying the label `label`
/// (`key=value`, or just `key`).
pub fn remove_labelled(label: &str) {
    require_docker();
    let filter = format!("label={label}");
    let containers = docker_lines(&["ps", "-aq", "--filter", &filter]);
    if !containers.is_empty() {
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(containers.iter().map(String::as_str));
        let _ = docker_ok(&args);
    }
    let volumes = docker_lines(&["volume", "ls", "-q", "--filter", &filter]);
    if !volumes.is_empty() {
        let mut args = vec!["volume", "rm", "-f"];
        args.extend(volumes.iter().map(String::as_str));
        let _ = docker_ok(&args);
    }
    let networks = docker_lines(&["network", "ls", "-q", "--filter", &filter]);
    if !networks.is_empty() {
        let mut args = vec!["network", "rm"];
        args.extend(networks.iter().map(String::as_str));
        let _ = docker_ok(&args);
    }
}

/// Names of the containers matching a `docker ps --filter` (stopped ones too when `all`),
/// sorted.
pub fn container_names(filter: &str, all: bool) -> Vec<String> {
    let mut args = vec!["ps", "--filter", filter, "--format", "{{.Names}}"];
    if all {
        args.push("-a");
    }
    let out = Command::new("docker")
        .args(&args)
        .output()
        .expect("docker ps");
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

/// A TCP port that was free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}
