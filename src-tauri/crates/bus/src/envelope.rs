//! The wire format of bus messages that cross a process boundary (the bytes the Redis
//! backend stores in its streams): *envelopes*.
//!
//! A [`Message`] is split in two:
//! - the **header**, every field except `payload` and `metadata`, in clear text (a compact
//!   binary form, see [`crate::header`]), so that routing and the dead-letter listing can
//!   read who sent what to whom;
//! - the **body**, `{"payload": {...}, "metadata": {...}}` as JSON, zstd-compressed (level 3)
//!   when it is larger than the codec's `compress_above`, then AES-256-GCM encrypted when
//!   the codec encrypts (random 96-bit nonce, the header bytes as associated data, so that
//!   a body cannot be moved under another header).
//!
//! Every envelope is signed with HMAC-SHA256 over all the bytes before the tag.
//!
//! # Layout
//! All integers are big-endian:
//!
//! ```text
//! b"SZ" | version u8 = 2 | flags u8 | header_len u32 | header
//!       | [nonce, 12 bytes, if encrypted] | body | [HMAC tag, 32 bytes, if signed]
//! ```
//!
//! Flags: bit 0 compressed, bit 1 encrypted, bit 2 signed; any other bit is refused.
//!
//! # Keys
//! One [`MasterKey`] (32 random bytes, kept in a `0600` file, see
//! [`MasterKey::load_or_create`]) is shared by the processes on the bus. The encryption
//! key and the signing key are derived from it with HKDF-SHA256 (info
//! `sutazai-bus-encrypt-v1` and `sutazai-bus-sign-v1`).
//!
//! # Decoding
//! [`Codec::decode`] is a security boundary: it never panics, and no allocation follows a
//! size the bytes claim (decompressed output is capped at [`MAX_BODY_LEN`]). It checks, in
//! order: the framing, that the envelope is signed, the signature, the encryption, the
//! compression, the body JSON, and the header, which must hold exactly the message's
//! fields. A refusal is a [`Rejected`], which carries the clear-text header (as JSON)
//! whenever it can be read, so that operators see who sent a refused envelope.
//!
//! Version 1 (a JSON header) is no longer read: it never left a release.
//! Decoding accepts encrypted and clear envelopes alike (both are signed), whichever way
//! the decoding codec itself encodes, so that encryption can be switched on one process
//! at a time.

use std::borrow::Cow;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, AeadInPlace, KeyInit, Payload};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;
use sutazai_core::Message;

use crate::header::{self, Header};

/// The length in bytes of the master key and of the keys derived from it.
pub const KEY_LEN: usize = 32;

/// The largest body, in bytes, that is encoded, or accepted once decrypted and
/// decompressed (64 MiB).
pub const MAX_BODY_LEN: usize = 64 * 1024 * 1024;

const MAGIC: [u8; 2] = *b"SZ";
const VERSION: u8 = 2;
const FLAG_COMPRESSED: u8 = 0b001;
const FLAG_ENCRYPTED: u8 = 0b010;
const FLAG_SIGNED: u8 = 0b100;
const KNOWN_FLAGS: u8 = FLAG_COMPRESSED | FLAG_ENCRYPTED | FLAG_SIGNED;
/// Magic, version, flags and header length.
const PREFIX_LEN: usize = 8;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 32;
const COMPRESSION_LEVEL: i32 = 3;
/// The largest zstd window the decoder accepts: no body needs a window larger than the
/// body itself, and this bounds the memory zstd allocates for a frame.
const WINDOW_LOG_MAX: u32 = 26;
const _: () = assert!(1 << WINDOW_LOG_MAX == MAX_BODY_LEN);
const ENCRYPT_INFO: &[u8] = b"sutazai-bus-encrypt-v1";
const SIGN_INFO: &[u8] = b"sutazai-bus-sign-v1";
/// Key files are a line of base64; anything much longer is not a key file.
const KEY_FILE_MAX: u64 = 1024;

type HmacSha256 = Hmac<Sha256>;

/// The master key the bus keys derive from.
///
/// Its `Debug` output is `MasterKey(..)`: the key itself is never printed.
#[derive(Clone)]
pub struct MasterKey([u8; KEY_LEN]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Why a master key could not be read, parsed or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Reading or writing the key file (or creating its directory) failed.
    #[error("key file {}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The text is not the standard base64 of exactly [`KEY_LEN`] bytes.
    #[error("invalid master key: {0}")]
    Invalid(String),
    /// The key file can be read or written by its group or by others.
    #[error(
        "key file {} has mode {mode:o}, which gives its group or others access; run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits (`0o644`, say).
        mode: u32,
    },
}

impl MasterKey {
    /// A fresh random key, from the operating system's seeded CSPRNG.
    pub fn generate() -> MasterKey {
        let mut bytes = [0u8; KEY_LEN];
        rand::fill(&mut bytes);
        MasterKey(bytes)
    }

    /// Parses the standard (padded) base64 of exactly [`KEY_LEN`] bytes; surrounding
    /// whitespace, a trailing newline say, is ignored.
    pub fn from_base64(text: &str) -> Result<MasterKey, KeyError> {
        // The decoder's error would quote the offending character: a piece of a key
        // must not end up in a log, so it is not passed on.
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| KeyError::Invalid("not standard base64".to_owned()))?;
        let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
            KeyError::Invalid(format!("expected {KEY_LEN} bytes, got {}", bytes.len()))
        })?;
        Ok(MasterKey(key))
    }

    /// The key as standard (padded) base64, the key file's format.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Reads the key file, or creates it (parent directories too) with a fresh key.
    ///
    /// A new file is written atomically: the key goes to a temporary file with mode
    /// `0600` (on Unix) beside it, is flushed to disk, then published under `path` with
    /// a hard link, which never replaces a file that another process created in the
    /// meantime (that one's key is then read and returned instead), or with a rename
    /// where the file system has no hard links.
    ///
    /// An existing file whose group or other permission bits are set is refused with
    /// [`KeyError::Permissions`].
    pub fn load_or_create(path: &Path) -> Result<MasterKey, KeyError> {
        match read_key_file(path)? {
            Some(key) => Ok(key),
            None => create_key_file(path),
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The key in `path`, `None` when there is no such file.
fn read_key_file(path: &Path) -> Result<Option<MasterKey>, KeyError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error(path)(error)),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        // The mode of the file that was opened, not of whatever the path names now.
        let mode = file
            .metadata()
            .map_err(io_error(path))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    let mut bytes = Vec::new();
    file.take(KEY_FILE_MAX)
        .read_to_end(&mut bytes)
        .map_err(io_error(path))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| KeyError::Invalid(format!("key file {} is not text", path.display())))?;
    match MasterKey::from_base64(text) {
        Ok(key) => Ok(Some(key)),
        Err(KeyError::Invalid(reason)) => Err(KeyError::Invalid(format!(
            "key file {}: {reason}",
            path.display()
        ))),
        Err(other) => Err(other),
    }
}

fn create_key_file(path: &Path) -> Result<MasterKey, KeyError> {
    let Some(name) = path.file_name() else {
        return Err(io_error(path)(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the key file path has no file name",
        )));
    };
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty());
    if let Some(dir) = dir {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
    }
    let key = MasterKey::generate();

    let mut temp_name = OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(
        ".{}-{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ));
    let temp = path.with_file_name(temp_name);
    if let Err(error) = write_new_private_file(&temp, format!("{}\n", key.to_base64()).as_bytes()) {
        // Best effort: the temporary file may not even exist.
        let _ = fs::remove_file(&temp);
        return Err(io_error(&temp)(error));
    }

    let published = match fs::hard_link(&temp, path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        // No hard links here (some network and FAT file systems): rename instead.
        Err(_) => fs::rename(&temp, path).map(|()| true),
    };
    // Best effort: after a successful rename it is already gone.
    let _ = fs::remove_file(&temp);
    match published.map_err(io_error(path))? {
        true => {
            if let Some(dir) = dir {
                // Best effort: makes the new directory entry durable where supported.
                let _ = File::open(dir).and_then(|dir| dir.sync_all());
            }
            Ok(key)
        }
        // Another process created the key file first: everybody uses that key.
        false => read_key_file(path)?.ok_or_else(|| {
            io_error(path)(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the path exists but is not a readable key file",
            ))
        }),
    }
}

/// Writes `contents` to a file that must not exist yet, readable by its owner only.
fn write_new_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Encodes and decodes envelopes. Cheap to clone: the derived keys are shared.
///
/// Its `Debug` output shows the settings, never the keys.
#[derive(Clone)]
pub struct Codec {
    keys: Arc<Keys>,
    encrypt: bool,
    compress_above: usize,
}

struct Keys {
    cipher: Aes256Gcm,
    /// Keyed with the signing key; cloned for each envelope.
    mac: HmacSha256,
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Codec")
            .field("encrypt", &self.encrypt)
            .field("compress_above", &self.compress_above)
            .finish_non_exhaustive()
    }
}

/// Why a message could not be encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The message could not be serialized as JSON.
    #[error("could not serialize the message: {0}")]
    Serialize(#[from] serde_json::Error),
    /// A header field or the body is above what the format or the decoder accepts.
    #[error("the message's {part} is {len} bytes, above the limit of {limit}")]
    TooLarge {
        /// The header field (`"sender_id"`, say), `"header"` or `"body"`.
        part: &'static str,
        /// Its size in bytes.
        len: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// zstd failed to compress the body.
    #[error("could not compress the body: {0}")]
    Compress(#[source] io::Error),
    /// AES-GCM refused to encrypt the body.
    #[error("could not encrypt the body")]
    Encrypt,
}

/// Why an envelope was refused; `header` is the clear-text part when it could be read (for
/// the dead-letter listing), so operators see who sent what even when it was tampered
/// with. A header is only trustworthy when `reason` comes after the signature check
/// ([`RejectReason::DecryptFailed`], [`RejectReason::Decompress`], or a
/// [`RejectReason::Malformed`] body).
#[derive(Debug, Clone)]
pub struct Rejected {
    /// The kind of refusal.
    pub reason: RejectReason,
    /// What exactly was wrong, for logs and the dead-letter listing.
    pub detail: String,
    /// The clear-text header as JSON, when it could be read.
    pub header: Option<Value>,
}

impl Rejected {
    fn new(reason: RejectReason, detail: impl Into<String>, header: Option<Value>) -> Rejected {
        Rejected {
            reason,
            detail: detail.into(),
            header,
        }
    }

    fn malformed(detail: impl Into<String>) -> Rejected {
        Rejected::new(RejectReason::Malformed, detail, None)
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "envelope rejected ({}): {}",
            self.reason.code(),
            self.detail
        )
    }
}

impl std::error::Error for Rejected {}

/// The kinds of refused envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// Bad magic, version, flags or lengths, truncated, or JSON that is not a message.
    Malformed,
    /// The signed flag is missing.
    Unsigned,
    /// The HMAC tag does not match: tampered with, or signed with another key.
    BadSignature,
    /// AES-GCM authentication failed.
    DecryptFailed,
    /// zstd failed, or the body decompresses to more than [`MAX_BODY_LEN`] bytes.
    Decompress,
}

impl RejectReason {
    /// The stable snake-case code (`"bad_signature"`), for metrics and the dead-letter
    /// listing.
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::Unsigned => "unsigned",
            RejectReason::BadSignature => "bad_signature",
            RejectReason::DecryptFailed => "decrypt_failed",
            RejectReason::Decompress => "decompress_failed",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Serialize)]
struct BodyRef<'a> {
    payload: &'a Map<String, Value>,
    metadata: &'a Map<String, Value>,
}

#[derive(Deserialize)]
struct Body {
    payload: Map<String, Value>,
    metadata: Map<String, Value>,
}

/// The slices of an envelope, bounds-checked.
struct Frame<'a> {
    flags: u8,
    header: &'a [u8],
    nonce: Option<&'a [u8; NONCE_LEN]>,
    body: &'a [u8],
    /// The signed bytes and the tag, when signed.
    signature: Option<(&'a [u8], &'a [u8; TAG_LEN])>,
}

impl<'a> Frame<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Frame<'a>, Rejected> {
        let Some((prefix, rest)) = bytes.split_first_chunk::<PREFIX_LEN>() else {
            return Err(Rejected::malformed(format!(
                "{} bytes is shorter than the {PREFIX_LEN}-byte prefix",
                bytes.len()
            )));
        };
        let [m0, m1, version, flags, l0, l1, l2, l3] = *prefix;
        if [m0, m1] != MAGIC {
            return Err(Rejected::malformed("bad magic (not an envelope)"));
        }
        if version != VERSION {
            return Err(Rejected::malformed(format!(
                "unsupported version {version} (expected {VERSION})"
            )));
        }
        if flags & !KNOWN_FLAGS != 0 {
            return Err(Rejected::malformed(format!("unknown flags {flags:#010b}")));
        }
        let header_len = u32::from_be_bytes([l0, l1, l2, l3]);
        let Some((header, rest)) = usize::try_from(header_len)
            .ok()
            .and_then(|len| rest.split_at_checked(len))
        else {
            return Err(Rejected::malformed(format!(
                "header length {header_len} runs past the end ({} bytes left)",
                rest.len()
            )));
        };
        let (rest, signature) = if flags & FLAG_SIGNED != 0 {
            // The tag is the last bytes of the envelope, after the header.
            let (Some((rest, tag)), Some((signed, _))) = (
                rest.split_last_chunk::<TAG_LEN>(),
                bytes.split_last_chunk::<TAG_LEN>(),
            ) else {
                return Err(Rejected::malformed("truncated: no room for the signature"));
            };
            (rest, Some((signed, tag)))
        } else {
            (rest, None)
        };
        let (nonce, body) = if flags & FLAG_ENCRYPTED != 0 {
            let Some((nonce, body)) = rest.split_first_chunk::<NONCE_LEN>() else {
                return Err(Rejected::malformed("truncated: no room for the nonce"));
            };
            (Some(nonce), body)
        } else {
            (None, rest)
        };
        Ok(Frame {
            flags,
            header,
            nonce,
            body,
            signature,
        })
    }
}

impl Codec {
    /// A codec with the keys derived from `master`. It encrypts the envelopes it encodes
    /// when `encrypt` is set, and compresses bodies larger than `compress_above` bytes.
    pub fn new(master: &MasterKey, encrypt: bool, compress_above: usize) -> Codec {
        let hkdf = Hkdf::<Sha256>::new(None, &master.0);
        let mut encrypt_key = [0u8; KEY_LEN];
        let mut sign_key = [0u8; KEY_LEN];
        // HKDF-SHA256 produces up to 255 * 32 bytes: 32 is always accepted, so these
        // cannot fail (and depend on no input).
        hkdf.expand(ENCRYPT_INFO, &mut encrypt_key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        hkdf.expand(SIGN_INFO, &mut sign_key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let keys = Keys {
            cipher: Aes256Gcm::new(&encrypt_key.into()),
            mac: <HmacSha256 as Mac>::new_from_slice(&sign_key)
                .expect("HMAC accepts keys of any length"),
        };
        Codec {
            keys: Arc::new(keys),
            encrypt,
            compress_above,
        }
    }

    /// Encodes `message` as a signed envelope, compressed and encrypted as configured.
    ///
    /// Fails only on a header above 4 GiB or a body above [`MAX_BODY_LEN`] (which the
    /// decoder would refuse), or on a failure of the serializer or the codecs that
    /// cannot happen with a well-formed [`Message`].
    pub fn encode(&self, message: &Message) -> Result<Vec<u8>, EncodeError> {
        // Built in one buffer: prefix, header, [nonce], body (encrypted in place), tag.
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(&[MAGIC[0], MAGIC[1], VERSION, 0, 0, 0, 0, 0]);
        write_header(message, &mut out)?;
        let header_len = out.len() - PREFIX_LEN;
        let prefix_len = u32::try_from(header_len).map_err(|_| EncodeError::TooLarge {
            part: "header",
            len: header_len,
            limit: u32::MAX as usize,
        })?;
        out[4..PREFIX_LEN].copy_from_slice(&prefix_len.to_be_bytes());

        let mut flags = FLAG_SIGNED;
        let nonce = self.encrypt.then(|| {
            let mut nonce = [0u8; NONCE_LEN];
            rand::fill(&mut nonce);
            nonce
        });
        if let Some(nonce) = &nonce {
            out.extend_from_slice(nonce);
        }
        let body_start = out.len();
        serde_json::to_writer(
            &mut out,
            &BodyRef {
                payload: &message.payload,
                metadata: &message.metadata,
            },
        )?;
        let body_len = out.len() - body_start;
        if body_len > MAX_BODY_LEN {
            return Err(EncodeError::TooLarge {
                part: "body",
                len: body_len,
                limit: MAX_BODY_LEN,
            });
        }
        if body_len > self.compress_above {
            flags |= FLAG_COMPRESSED;
            let compressed = zstd::bulk::compress(&out[body_start..], COMPRESSION_LEVEL)
                .map_err(EncodeError::Compress)?;
            out.truncate(body_start);
            out.extend_from_slice(&compressed);
        }
        if let Some(nonce) = &nonce {
            flags |= FLAG_ENCRYPTED;
            let (head, body) = out.split_at_mut(body_start);
            let header = &head[PREFIX_LEN..PREFIX_LEN + header_len];
            let gcm_tag = self
                .keys
                .cipher
                .encrypt_in_place_detached(&(*nonce).into(), header, body)
                .map_err(|_| EncodeError::Encrypt)?;
            out.extend_from_slice(&gcm_tag);
        }
        out[3] = flags;
        let tag = self.tag(&out);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Decodes an envelope back into the message, checking its signature and, where
    /// flagged, decrypting and decompressing it. Never panics, whatever `bytes` hold.
    pub fn decode(&self, bytes: &[u8]) -> Result<Message, Rejected> {
        let frame = Frame::parse(bytes)?;
        // The fast path reads the header straight into its fields once the envelope is
        // authenticated; only a refusal parses it loosely, to show it in the listing.
        let header = Header::read(frame.header);
        let body = self
            .open(&frame)
            .map_err(|(reason, detail)| match &header {
                Ok(header) => Rejected::new(reason, detail, Some(header.to_json())),
                Err(error) => Rejected::malformed(format!("the header is unreadable: {error}")),
            })?;
        let header = header
            .map_err(|error| Rejected::malformed(format!("the header is unreadable: {error}")))?;
        Ok(assemble(header, body))
    }

    /// Checks the signature, decrypts, decompresses and parses the body.
    fn open(&self, frame: &Frame<'_>) -> Result<Body, (RejectReason, String)> {
        let Some((signed, tag)) = frame.signature else {
            return Err((
                RejectReason::Unsigned,
                "the envelope is not signed".to_owned(),
            ));
        };
        self.keys
            .mac
            .clone()
            .chain_update(signed)
            .verify_slice(tag)
            .map_err(|_| {
                (
                    RejectReason::BadSignature,
                    "the signature does not match: tampered with, or signed with another key"
                        .to_owned(),
                )
            })?;

        let mut body = Cow::Borrowed(frame.body);
        if let Some(nonce) = frame.nonce {
            let plain = self
                .keys
                .cipher
                .decrypt(
                    &(*nonce).into(),
                    Payload {
                        msg: &body,
                        aad: frame.header,
                    },
                )
                .map_err(|_| {
                    (
                        RejectReason::DecryptFailed,
                        "AES-GCM authentication failed".to_owned(),
                    )
                })?;
            body = Cow::Owned(plain);
        }
        if frame.flags & FLAG_COMPRESSED != 0 {
            let plain = decompress_bounded(&body, MAX_BODY_LEN)
                .map_err(|detail| (RejectReason::Decompress, detail))?;
            body = Cow::Owned(plain);
        } else if body.len() > MAX_BODY_LEN {
            return Err((
                RejectReason::Malformed,
                format!(
                    "the body is {} bytes, above the limit of {MAX_BODY_LEN}",
                    body.len()
                ),
            ));
        }
        serde_json::from_slice(&body).map_err(|error| {
            (
                RejectReason::Malformed,
                format!("the body is not a JSON payload and metadata: {error}"),
            )
        })
    }

    /// The HMAC-SHA256 tag of `signed`.
    fn tag(&self, signed: &[u8]) -> [u8; TAG_LEN] {
        self.keys
            .mac
            .clone()
            .chain_update(signed)
            .finalize()
            .into_bytes()
            .into()
    }
}

/// Appends the header (every field of the message but `payload` and `metadata`) to `out`.
fn write_header(message: &Message, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    header::write(message, out).map_err(|e| EncodeError::TooLarge {
        part: e.field,
        len: e.len,
        limit: header::MAX_TEXT,
    })
}

/// The header alone.
#[cfg(test)]
fn header_bytes(message: &Message) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    write_header(message, &mut out)?;
    Ok(out)
}

/// The body before compression and encryption.
#[cfg(test)]
fn body_bytes(message: &Message) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&BodyRef {
        payload: &message.payload,
        metadata: &message.metadata,
    })
}

/// The message made of an authenticated header and body.
fn assemble(header: Header, body: Body) -> Message {
    Message {
        id: header.id,
        sender_id: header.sender_id,
        recipient_id: header.recipient_id,
        message_type: header.message_type,
        pattern: header.pattern,
        priority: header.priority,
        topic: header.topic,
        payload: body.payload,
        metadata: body.metadata,
        created_at: header.created_at,
        expires_at: header.expires_at,
    }
}

/// Decompresses zstd `data`, refusing output above `cap` bytes without allocating more
/// than `cap` for it.
fn decompress_bounded(data: &[u8], cap: usize) -> Result<Vec<u8>, String> {
    let mut decoder =
        zstd::stream::read::Decoder::with_buffer(data).map_err(|error| format!("zstd: {error}"))?;
    decoder
        .window_log_max(WINDOW_LOG_MAX)
        .map_err(|error| format!("zstd: {error}"))?;
    let mut out = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let read = match decoder.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(format!("zstd: {error}")),
        };
        let Some(piece) = chunk.get(..read) else {
            return Err("zstd: reader overran its buffer".to_owned());
        };
        let len = out.len() + piece.len();
        if len > cap {
            return Err(format!("the body decompresses to more than {cap} bytes"));
        }
        if len > out.capacity() {
            // Grow by doubling, as `Vec` would, but never past the cap.
            let target = out.capacity().saturating_mul(2).max(len).min(cap);
            out.try_reserve_exact(target - out.len())
                .map_err(|_| format!("out of memory decompressing {len} bytes"))?;
        }
        out.extend_from_slice(piece);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone as _, Utc};
    use rand::{Rng as _, SeedableRng as _};
    use sutazai_core::{CommunicationPattern, MessageType, Priority};

    fn message(payload_len: usize) -> Message {
        let mut payload = Map::new();
        payload.insert("task".into(), Value::from("summarize the report"));
        payload.insert("blob".into(), Value::from(random_text(payload_len)));
        let mut metadata = Map::new();
        metadata.insert("trace_id".into(), Value::from("t-42"));
        Message {
            id: "0196a1b2-0000-7000-8000-000000000001".into(),
            sender_id: "orchestrator".into(),
            recipient_id: Some("senior-ai-engineer".into()),
            message_type: MessageType::TaskRequest,
            pattern: CommunicationPattern::PointToPoint,
            priority: Priority::High,
            topic: None,
            payload,
            metadata,
            created_at: Utc::now(),
            expires_at: Some(Utc.with_ymd_and_hms(2031, 1, 2, 3, 4, 5).unwrap()),
        }
    }

    /// Text that does not compress much.
    fn random_text(len: usize) -> String {
        let mut rng = rand::rngs::StdRng::seed_from_u64(len as u64);
        (0..len)
            .map(|_| char::from(rng.random_range(b'!'..=b'~')))
            .collect()
    }

    fn codec(encrypt: bool) -> Codec {
        Codec::new(&MasterKey::generate(), encrypt, 1024)
    }

    fn flags(envelope: &[u8]) -> u8 {
        envelope[3]
    }

    fn header_len(envelope: &[u8]) -> usize {
        u32::from_be_bytes(envelope[4..8].try_into().unwrap()) as usize
    }

    /// Replaces the tag with a valid one for the (altered) bytes before it.
    fn resign(codec: &Codec, mut envelope: Vec<u8>) -> Vec<u8> {
        envelope.truncate(envelope.len() - TAG_LEN);
        let tag = codec.tag(&envelope);
        envelope.extend_from_slice(&tag);
        envelope
    }

    /// A signed envelope with arbitrary parts.
    fn signed(codec: &Codec, flags: u8, header: &[u8], rest: &[u8]) -> Vec<u8> {
        let mut envelope = b"SZ".to_vec();
        envelope.push(VERSION);
        envelope.push(flags | FLAG_SIGNED);
        envelope.extend_from_slice(&(header.len() as u32).to_be_bytes());
        envelope.extend_from_slice(header);
        envelope.extend_from_slice(rest);
        envelope.extend_from_slice(&[0; TAG_LEN]);
        resign(codec, envelope)
    }

    fn reason(result: Result<Message, Rejected>) -> RejectReason {
        match result {
            Ok(message) => panic!("accepted {message:?}"),
            Err(rejected) => rejected.reason,
        }
    }

    #[test]
    fn round_trips_small_and_large_clear_and_encrypted() {
        for encrypt in [false, true] {
            let codec = codec(encrypt);
            for payload_len in [0, 10, 100 * 1024] {
                let m = message(payload_len);
                let envelope = codec.encode(&m).unwrap();
                assert_eq!(&envelope[..3], &[b'S', b'Z', VERSION]);
                let expected = FLAG_SIGNED
                    | if encrypt { FLAG_ENCRYPTED } else { 0 }
                    | if payload_len > 1000 {
                        FLAG_COMPRESSED
                    } else {
                        0
                    };
                assert_eq!(flags(&envelope), expected, "{encrypt} {payload_len}");
                assert_eq!(codec.decode(&envelope).unwrap(), m);
            }
        }
    }

    #[test]
    fn round_trips_optional_fields_and_empty_maps() {
        let codec = codec(true);
        let mut m = message(0);
        m.recipient_id = None;
        m.expires_at = None;
        m.topic = Some("swarm.t1".into());
        m.pattern = CommunicationPattern::PubSub;
        m.payload.clear();
        m.metadata.clear();
        assert_eq!(codec.decode(&codec.encode(&m).unwrap()).unwrap(), m);
    }

    #[test]
    fn header_is_clear_text_and_body_is_hidden_when_encrypted() {
        let m = message(100);
        let clear = "summarize the report";
        for encrypt in [false, true] {
            let envelope = codec(encrypt).encode(&m).unwrap();
            let header = Header::read(&envelope[8..8 + header_len(&envelope)])
                .unwrap()
                .to_json();
            assert_eq!(header["sender_id"], "orchestrator");
            assert_eq!(header["priority"], "high");
            assert!(header.get("payload").is_none() && header.get("metadata").is_none());
            let text = String::from_utf8_lossy(&envelope);
            assert_eq!(text.contains(clear), !encrypt);
        }
    }

    #[test]
    fn compresses_only_above_the_threshold() {
        let m = message(300);
        let body_len = body_bytes(&m).unwrap().len();
        let key = MasterKey::generate();
        for encrypt in [false, true] {
            let at = Codec::new(&key, encrypt, body_len).encode(&m).unwrap();
            assert_eq!(flags(&at) & FLAG_COMPRESSED, 0);
            let below = Codec::new(&key, encrypt, body_len - 1).encode(&m).unwrap();
            assert_eq!(flags(&below) & FLAG_COMPRESSED, FLAG_COMPRESSED);
            for envelope in [at, below] {
                assert_eq!(Codec::new(&key, encrypt, 0).decode(&envelope).unwrap(), m);
            }
        }
    }

    #[test]
    fn repetitive_payloads_shrink() {
        let mut m = message(0);
        let text = "the quick brown fox jumps over the lazy dog. ".repeat(20_000);
        m.payload.insert("text".into(), Value::from(text));
        let body_len = body_bytes(&m).unwrap().len();
        for encrypt in [false, true] {
            let codec = codec(encrypt);
            let envelope = codec.encode(&m).unwrap();
            assert!(
                envelope.len() * 20 < body_len,
                "{} vs {body_len}",
                envelope.len()
            );
            assert_eq!(codec.decode(&envelope).unwrap(), m);
        }
    }

    #[test]
    fn tampering_with_any_region_is_refused() {
        for encrypt in [false, true] {
            let codec = codec(encrypt);
            let m = message(2000);
            let envelope = codec.encode(&m).unwrap();
            let body_start = 8 + header_len(&envelope);
            let tamper = |at: usize| {
                let mut bad = envelope.clone();
                bad[at] ^= 0x01;
                codec.decode(&bad)
            };
            // A letter of the sender id: still a header, so it comes back.
            let sender = envelope
                .windows(b"orchestrator".len())
                .position(|w| w == b"orchestrator")
                .unwrap()
                + 2;
            assert!(sender < body_start);
            let rejected = tamper(sender).unwrap_err();
            assert_eq!(rejected.reason, RejectReason::BadSignature);
            assert_eq!(rejected.header.unwrap()["sender_id"], "orbhestrator");
            // The nonce or the body, the middle of the body, the tag.
            for at in [
                body_start,
                body_start + 20,
                envelope.len() - TAG_LEN - 1,
                envelope.len() - TAG_LEN,
                envelope.len() - 1,
            ] {
                assert_eq!(reason(tamper(at)), RejectReason::BadSignature, "at {at}");
            }
            // The framing.
            for at in [0, 1, 2] {
                assert_eq!(reason(tamper(at)), RejectReason::Malformed, "at {at}");
            }
            let mut bad = envelope.clone();
            bad[3] ^= FLAG_COMPRESSED;
            assert_eq!(reason(codec.decode(&bad)), RejectReason::BadSignature);
            bad[3] = flags(&envelope) | 0b1000;
            assert_eq!(reason(codec.decode(&bad)), RejectReason::Malformed);
            // Whatever byte is flipped, the envelope is refused.
            for at in 0..envelope.len() {
                assert!(tamper(at).is_err(), "flipping byte {at} went unnoticed");
            }
        }
    }

    #[test]
    fn unsigned_envelopes_are_refused_with_their_header() {
        for encrypt in [false, true] {
            let codec = codec(encrypt);
            let mut envelope = codec.encode(&message(10)).unwrap();
            envelope.truncate(envelope.len() - TAG_LEN);
            envelope[3] &= !FLAG_SIGNED;
            let rejected = codec.decode(&envelope).unwrap_err();
            assert_eq!(rejected.reason, RejectReason::Unsigned);
            assert_eq!(
                rejected.header.unwrap()["recipient_id"],
                "senior-ai-engineer"
            );
        }
    }

    #[test]
    fn another_key_is_a_bad_signature() {
        for encrypt in [false, true] {
            let envelope = codec(encrypt).encode(&message(10)).unwrap();
            assert_eq!(
                reason(codec(encrypt).decode(&envelope)),
                RejectReason::BadSignature
            );
        }
    }

    #[test]
    fn same_master_key_decodes_across_codecs() {
        let key = MasterKey::generate();
        let again = MasterKey::from_base64(&key.to_base64()).unwrap();
        let envelope = Codec::new(&key, true, 0).encode(&message(10)).unwrap();
        // A codec that does not encrypt still reads encrypted envelopes.
        assert!(Codec::new(&again, false, 1 << 20).decode(&envelope).is_ok());
    }

    #[test]
    fn broken_ciphertext_with_a_valid_signature_fails_decryption() {
        let codec = codec(true);
        let envelope = codec.encode(&message(10)).unwrap();
        let mut bad = envelope.clone();
        let last_body_byte = bad.len() - TAG_LEN - 1;
        bad[last_body_byte] ^= 0x80;
        let rejected = codec.decode(&resign(&codec, bad)).unwrap_err();
        assert_eq!(rejected.reason, RejectReason::DecryptFailed);
        assert!(rejected.header.is_some());

        // A body moved under another message's header, even re-signed, does not decrypt.
        let other = codec.encode(&message(11)).unwrap();
        let mut header = other[8..8 + header_len(&other)].to_vec();
        let position = header.iter().position(|&b| b == b'h').unwrap();
        header[position] = b'H';
        let sealed = &envelope[8 + header_len(&envelope)..envelope.len() - TAG_LEN];
        let moved = signed(&codec, FLAG_ENCRYPTED, &header, sealed);
        assert_eq!(reason(codec.decode(&moved)), RejectReason::DecryptFailed);
    }

    #[test]
    fn bad_compressed_bodies_are_refused() {
        let codec = codec(false);
        let header = header_bytes(&message(0)).unwrap();
        let garbage = signed(&codec, FLAG_COMPRESSED, &header, b"not zstd at all");
        let rejected = codec.decode(&garbage).unwrap_err();
        assert_eq!(rejected.reason, RejectReason::Decompress);
        assert_eq!(rejected.reason.code(), "decompress_failed");

        // A bomb: a few kilobytes that expand past the cap.
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        let spaces = vec![b' '; 1 << 20];
        for _ in 0..=MAX_BODY_LEN >> 20 {
            encoder.write_all(&spaces).unwrap();
        }
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 100_000);
        let envelope = signed(&codec, FLAG_COMPRESSED, &header, &bomb);
        let rejected = codec.decode(&envelope).unwrap_err();
        assert_eq!(rejected.reason, RejectReason::Decompress);
        assert!(rejected.detail.contains("more than"), "{}", rejected.detail);

        // Exactly at the cap decompresses; it just is not a body.
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        for _ in 0..MAX_BODY_LEN >> 20 {
            encoder.write_all(&spaces).unwrap();
        }
        let envelope = signed(&codec, FLAG_COMPRESSED, &header, &encoder.finish().unwrap());
        assert_eq!(reason(codec.decode(&envelope)), RejectReason::Malformed);
    }

    #[test]
    fn signed_parts_that_are_not_a_message_are_malformed() {
        let codec = codec(false);
        let good_body = body_bytes(&message(0)).unwrap();
        let good_header = header_bytes(&message(0)).unwrap();
        // A readable header with a body that is not one: the header comes back.
        for body in [&br#"{"payload": []}"#[..], b"{", b"[1, 2]", b""] {
            let rejected = codec
                .decode(&signed(&codec, 0, &good_header, body))
                .unwrap_err();
            assert_eq!(rejected.reason, RejectReason::Malformed, "{rejected}");
            assert!(rejected.header.is_some());
        }
        assert!(
            codec
                .decode(&signed(&codec, 0, &good_header, &good_body))
                .is_ok()
        );
        // An unreadable header: JSON (the old format), cut short, or with a byte more.
        let mut longer = good_header.clone();
        longer.push(0);
        for header in [
            &br#"{"id": "x"}"#[..],
            &good_header[..good_header.len() - 1],
            &longer,
            b"",
        ] {
            let rejected = codec
                .decode(&signed(&codec, 0, header, &good_body))
                .unwrap_err();
            assert_eq!(rejected.reason, RejectReason::Malformed, "{rejected}");
            assert!(rejected.header.is_none());
            assert!(rejected.detail.contains("header"), "{}", rejected.detail);
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        for encrypt in [false, true] {
            let codec = codec(encrypt);
            let envelope = codec.encode(&message(3000)).unwrap();
            for len in 0..envelope.len() {
                assert!(codec.decode(&envelope[..len]).is_err(), "length {len}");
            }
        }
    }

    #[test]
    fn garbage_is_refused() {
        let codec = codec(true);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for round in 0..3000 {
            let len = rng.random_range(0..600);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            // Half the time, a plausible prefix, so that the later checks are reached.
            if round % 2 == 0 && len >= PREFIX_LEN {
                bytes[..3].copy_from_slice(&[b'S', b'Z', VERSION]);
                bytes[3] &= KNOWN_FLAGS;
                let header_len = rng.random_range(0..=(len - PREFIX_LEN) as u32 + 4);
                bytes[4..8].copy_from_slice(&header_len.to_be_bytes());
            }
            assert!(codec.decode(&bytes).is_err());
        }
        let mut huge_header = vec![b'S', b'Z', VERSION, FLAG_SIGNED];
        huge_header.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(reason(codec.decode(&huge_header)), RejectReason::Malformed);
    }

    #[test]
    fn reject_codes() {
        let codes = [
            (RejectReason::Malformed, "malformed"),
            (RejectReason::Unsigned, "unsigned"),
            (RejectReason::BadSignature, "bad_signature"),
            (RejectReason::DecryptFailed, "decrypt_failed"),
            (RejectReason::Decompress, "decompress_failed"),
        ];
        for (reason, code) in codes {
            assert_eq!(reason.code(), code);
            assert_eq!(reason.to_string(), code);
        }
    }

    #[test]
    fn derived_keys_follow_hkdf() {
        let key = MasterKey::from_base64(&STANDARD.encode([7u8; KEY_LEN])).unwrap();
        let codec = Codec::new(&key, false, 0);
        let mut sign_key = [0u8; KEY_LEN];
        Hkdf::<Sha256>::new(None, &[7u8; KEY_LEN])
            .expand(b"sutazai-bus-sign-v1", &mut sign_key)
            .unwrap();
        let expected = <HmacSha256 as Mac>::new_from_slice(&sign_key)
            .unwrap()
            .chain_update(b"abc")
            .finalize()
            .into_bytes();
        assert_eq!(codec.tag(b"abc")[..], expected[..]);
    }

    #[test]
    fn debug_output_hides_keys() {
        let key = MasterKey::generate();
        let text = format!("{key:?} {:?}", Codec::new(&key, true, 10));
        assert!(text.starts_with("MasterKey(..) Codec {"), "{text}");
        assert!(!text.contains(&key.to_base64()));
        assert!(!text.contains(&format!("{:?}", key.0)));
    }

    #[test]
    fn base64_keys() {
        let key = MasterKey::generate();
        let text = key.to_base64();
        let again = MasterKey::from_base64(&format!("  {text}\n")).unwrap();
        assert_eq!(again.0, key.0);
        for bad in [
            "",
            "not base64!",
            &STANDARD.encode([1u8; 31]),
            &STANDARD.encode([1u8; 33]),
        ] {
            assert!(matches!(
                MasterKey::from_base64(bad),
                Err(KeyError::Invalid(_))
            ));
        }
    }

    #[test]
    fn key_file_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/bus.key");
        let key = MasterKey::load_or_create(&path).unwrap();
        let again = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(again.0, key.0);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim(), key.to_base64());
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[cfg(unix)]
    #[test]
    fn key_file_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus.key");
        MasterKey::load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        match MasterKey::load_or_create(&path) {
            Err(error @ KeyError::Permissions { mode: 0o644, .. }) => {
                let text = error.to_string();
                assert!(
                    text.contains("chmod 600") && text.contains("bus.key"),
                    "{text}"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        // The file was left alone.
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn invalid_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (name, contents) in [
            ("bad.key", "definitely not a key".to_owned()),
            ("short.key", STANDARD.encode([3u8; 16])),
        ] {
            let path = dir.path().join(name);
            write_new_private_file(&path, contents.as_bytes()).unwrap();
            match MasterKey::load_or_create(&path) {
                Err(KeyError::Invalid(reason)) => assert!(reason.contains(name), "{reason}"),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn rejected_displays_its_code() {
        let rejected = codec(false).decode(b"nope").unwrap_err();
        assert_eq!(rejected.reason, RejectReason::Malformed);
        assert!(rejected.to_string().contains("malformed"), "{rejected}");
    }
}
