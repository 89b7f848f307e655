//! The JWT signing secret: `JWT_SECRET_KEY` when set (at least 32 bytes), otherwise 32
//! random bytes generated once into a 0600 file in the data directory.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;

use crate::{AuthError, Tokens};

/// The secret's file name in the data directory.
pub const SECRET_FILE: &str = "jwt-secret";

/// The configured secret's bytes, or the one in `dir/jwt-secret` (generated when missing).
/// Blocking.
pub fn load_or_create(configured: Option<&str>, dir: &Path) -> Result<Vec<u8>, AuthError> {
    if let Some(secret) = configured {
        let bytes = secret.as_bytes().to_vec();
        if bytes.len() < Tokens::MIN_SECRET_BYTES {
            return Err(AuthError::Secret(crate::tokens::weak_secret(bytes.len())));
        }
        return Ok(bytes);
    }
    let path = dir.join(SECRET_FILE);
    let io = |source| AuthError::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            tighten(&path).map_err(io)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| AuthError::Secret(format!("{}: not base64 ({e})", path.display())))?;
            if bytes.len() < Tokens::MIN_SECRET_BYTES {
                return Err(AuthError::Secret(format!(
                    "{}: {} bytes, fewer than {}; delete it to have a new one generated",
                    path.display(),
                    bytes.len(),
                    Tokens::MIN_SECRET_BYTES
                )));
            }
            Ok(bytes)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io)?;
            let mut bytes = vec![0u8; 32];
            rand::fill(bytes.as_mut_slice());
            // Written whole to a private temporary file, then linked into place: a crash
            // leaves no empty secret, and of two processes creating it at once (the desktop
            // window's session and the server, or the CLI) the second reads the first's.
            let temp = dir.join(format!(".{SECRET_FILE}.{}", std::process::id()));
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&temp).map_err(io)?;
            let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
            file.write_all(format!("{text}\n").as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            drop(file);
            let linked = std::fs::hard_link(&temp, &path);
            let _ = std::fs::remove_file(&temp);
            match linked {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "generated the JWT signing secret");
                    Ok(bytes)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    load_or_create(None, dir)
                }
                Err(e) => Err(io(e)),
            }
        }
        Err(e) => Err(io(e)),
    }
}

/// Makes an existing secret file owner-only.
fn tighten(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "JWT secret file was readable by others: made it 0600");
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_kept_private_and_weak_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(None, dir.path()).unwrap();
        assert_eq!(first.len(), 32);
        assert_eq!(load_or_create(None, dir.path()).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.path().join(SECRET_FILE);
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            load_or_create(None, dir.path()).unwrap();
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let err = load_or_create(Some("your-secret-key"), dir.path()).unwrap_err();
        assert!(err.to_string().contains("at least 32"), "{err}");
        let long = "x".repeat(40);
        assert_eq!(
            load_or_create(Some(&long), dir.path()).unwrap(),
            long.as_bytes()
        );
    }
}
