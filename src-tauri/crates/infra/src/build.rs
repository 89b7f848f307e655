//! Images built from the app itself: a service with `build_local = true` whose image is
//! missing gets one made on the spot from this installation's `sutazai-headless` binary
//! (beside the running executable, or the running executable itself), the shared libraries
//! `ldd` lists for it, the dynamic loader and the CA certificates — one layer, imported
//! into the engine under the service's image name. No registry is involved, so the worker
//! image always matches the app that runs it.
//!
//! The engine must run binaries of this machine's kind (a local engine does); the command
//! of such a service should start `/usr/local/bin/sutazai-headless`.

use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures::StreamExt as _;

use crate::error::InfraError;

/// Where the binary lands in the image.
pub const BINARY_IN_IMAGE: &str = "usr/local/bin/sutazai-headless";

fn failed(image: &str, reason: impl Into<String>) -> InfraError {
    InfraError::Pull {
        what: image.to_owned(),
        reason: format!("building it from this app failed: {}", reason.into()),
    }
}

/// The binary to put in the image: `sutazai-headless` beside the running executable, or
/// the running executable.
fn own_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("locating this program: {e}"))?;
    let beside = exe.with_file_name("sutazai-headless");
    Ok(if beside.is_file() { beside } else { exe })
}

/// A tag naming this build of the app (`0.1.0-1a2b3c4d`: version, and a hash of the
/// binary's size and modification time), for `${SUTAZAI_WORKER_TAG}` in the catalogue, so
/// that an upgraded app builds a new worker image instead of reusing the old one.
pub fn self_image_tag() -> String {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    if let Ok(meta) = own_binary().and_then(|b| std::fs::metadata(b).map_err(|e| e.to_string())) {
        meta.len().hash(&mut h);
        meta.modified().ok().hash(&mut h);
    }
    format!("{}-{:08x}", env!("CARGO_PKG_VERSION"), h.finish() as u32)
}

/// The shared libraries and loader `ldd` lists for `binary` (none for a static one).
async fn libraries(binary: &Path) -> Result<Vec<PathBuf>, String> {
    let out = tokio::process::Command::new("ldd")
        .arg(binary)
        .output()
        .await
        .map_err(|e| format!("running ldd: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // "not a dynamic executable": nothing to add.
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for line in text.lines() {
        if line.contains("not found") {
            return Err(format!("ldd: {}", line.trim()));
        }
        // "libx.so.1 => /lib/…/libx.so.1 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)".
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            found.push(PathBuf::from(path));
        }
    }
    Ok(found)
}

/// The image's one layer: a tar of the files, read off the reactor.
fn layer(binary: PathBuf, libraries: Vec<PathBuf>) -> std::io::Result<Vec<u8>> {
    // Plain entries only (symlinks followed, never GNU sparse entries, which the engine
    // refuses to apply).
    fn add(tar: &mut tar::Builder<Vec<u8>>, from: &Path, to: &Path) -> std::io::Result<()> {
        let file = std::fs::File::open(from)?;
        let meta = file.metadata()?;
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(meta.len());
        header.set_mode(0o755);
        header.set_cksum();
        tar.append_data(&mut header, to, file)
    }
    let mut tar = tar::Builder::new(Vec::new());
    add(&mut tar, &binary, Path::new(BINARY_IN_IMAGE))?;
    for lib in &libraries {
        let inside = lib.strip_prefix("/").unwrap_or(lib);
        add(&mut tar, lib, inside)?;
    }
    let certs = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if certs.is_file() {
        add(
            &mut tar,
            certs,
            Path::new("etc/ssl/certs/ca-certificates.crt"),
        )?;
    }
    for dir in ["tmp/", "data/"] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o1777);
        header.set_size(0);
        header.set_cksum();
        tar.append_data(&mut header, dir, std::io::empty())?;
    }
    tar.into_inner()
}

/// Builds `image` (`repo:tag`) from this app and imports it into the engine.
pub(crate) async fn build_self_image(docker: &Docker, image: &str) -> Result<(), InfraError> {
    let binary = own_binary().map_err(|e| failed(image, e))?;
    let libs = libraries(&binary).await.map_err(|e| failed(image, e))?;
    let bytes = tokio::task::spawn_blocking(move || layer(binary, libs))
        .await
        .map_err(|e| failed(image, e.to_string()))?
        .map_err(|e| failed(image, e.to_string()))?;
    let (repo, tag) = crate::ops::split_reference(image);
    let options = CreateImageOptionsBuilder::new()
        .from_src("-")
        .repo(repo)
        .tag(if tag.is_empty() { "latest" } else { tag })
        .build();
    let mut progress =
        docker.create_image(Some(options), Some(bollard::body_full(bytes.into())), None);
    while let Some(item) = progress.next().await {
        let info = item.map_err(|e| failed(image, e.to_string()))?;
        if let Some(detail) = info.error_detail {
            return Err(failed(image, detail.message.unwrap_or_default()));
        }
    }
    Ok(())
}
