//! The server key: sealing TOTP secrets at rest, keyed hashes of recovery
//! codes, and the keys for CSRF tokens and session cookies.
//!
//! A key file holds one key per line, `ID BASE64(32 bytes)`; the first line is
//! the active key, later lines are other keys kept so that what they made can
//! still be read. Every purpose gets its own sub-key, derived with
//! HMAC-SHA256 from the master key, so no key is ever used for two things.
//!
//! Rotation (`latchkey key rotate`, `crate::ops::rotation`): new values are
//! always made with the active key, and values a person holds — a recovery
//! code, a browser's token, a session cookie, a form's CSRF token — are
//! accepted under any key in the file. A *retired* key has lost its master
//! key (`ID retired PURPOSE:BASE64 …`): it can no longer open a sealed secret
//! or make anything, and keeps only the sub-keys that check those values,
//! which the server never stored in a form it could re-key, until nothing
//! made under it is left.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const SEAL_VERSION: &str = "v1";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot create key file {path}: {source}")]
    Create { path: String, source: std::io::Error },
    #[error("key file {path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`")]
    Permissions { path: String, mode: u32 },
    #[error("key file {path}, line {line}: expected `ID BASE64KEY` with a 32-byte key")]
    Format { path: String, line: usize },
    #[error("key file {path} holds no key")]
    Empty { path: String },
    #[error("key file {path}: the first (active) key `{id}` is a retired key; put a full key first")]
    RetiredFirst { path: String, id: String },
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnsealError {
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed with key `{0}`, which the key file no longer holds")]
    UnknownKey(String),
    #[error("sealed with key `{0}`, which was retired (its master key is gone)")]
    Retired(String),
    #[error("sealed value failed authentication")]
    Tampered,
}

/// The purposes whose sub-keys a retired key keeps: each checks a value that
/// a person holds and that was made under that key (see the module docs).
pub const RETAINED_PURPOSES: &[&str] = &[
    "recovery-code",
    "known-browser",
    "remember-browser",
    "email-link",
    "csrf",
    "cookie-a",
    "cookie-b",
];

struct KeyEntry {
    id: String,
    material: Material,
}

enum Material {
    Master([u8; KEY_LEN]),
    /// The sub-keys of `RETAINED_PURPOSES`, in that order.
    Retired(Vec<[u8; KEY_LEN]>),
}

impl KeyEntry {
    fn subkey(&self, purpose: &str) -> Option<[u8; KEY_LEN]> {
        match &self.material {
            Material::Master(master) => Some(Keyring::subkey(master, purpose)),
            Material::Retired(kept) => RETAINED_PURPOSES
                .iter()
                .position(|p| *p == purpose)
                .and_then(|i| kept.get(i).copied()),
        }
    }

    fn master(&self) -> Option<&[u8; KEY_LEN]> {
        match &self.material {
            Material::Master(m) => Some(m),
            Material::Retired(_) => None,
        }
    }

    fn line(&self) -> String {
        match &self.material {
            Material::Master(m) => format!("{} {}", self.id, STANDARD.encode(m)),
            Material::Retired(kept) => {
                let mut line = format!("{} retired", self.id);
                for (purpose, key) in RETAINED_PURPOSES.iter().zip(kept) {
                    line.push_str(&format!(" {purpose}:{}", STANDARD.encode(key)));
                }
                line
            }
        }
    }
}

/// All keys of the server, the active one first.
pub struct Keyring {
    keys: Vec<KeyEntry>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<_> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Keyring").field("ids", &ids).finish()
    }
}

impl Keyring {
    /// Read the key file, or create it (mode 0600) with one fresh key when it
    /// does not exist yet.
    ///
    /// Several instances may start at the same moment on one shared key path
    /// (a fresh deployment): each writes its candidate key to a temporary
    /// file beside the target, syncs it, and hard-links it into place.
    /// `link` fails if the target exists, so exactly one candidate wins, and
    /// the target is complete from the moment it has a name; every loser
    /// reads the winner's key.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        // For the start-up log, one line: which file, and created or loaded.
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        match std::fs::read_to_string(path) {
            Ok(text) => {
                check_permissions(path)?;
                let keys = Self::parse(&text, &shown)?;
                tracing::info!("Server key: loaded from {}", absolute.display());
                Ok(keys)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = super::random_bytes::<KEY_LEN>();
                let line = format!("k1 {}\n", STANDARD.encode(key));
                let created = publish_private_file(path, line.as_bytes()).map_err(|source| KeyError::Create {
                    path: shown.clone(),
                    source,
                })?;
                if created {
                    tracing::info!(
                        "Server key: generated a new server key file at {} (mode 0600; back it up)",
                        absolute.display()
                    );
                    return Self::parse(&line, &shown);
                }
                // Another instance created it first: use its key.
                let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
                    path: shown.clone(),
                    source,
                })?;
                check_permissions(path)?;
                let keys = Self::parse(&text, &shown)?;
                tracing::info!(
                    "Server key: loaded from {}, created by another instance starting at the same moment",
                    absolute.display()
                );
                Ok(keys)
            }
            Err(source) => Err(KeyError::Read { path: shown, source }),
        }
    }

    /// Read the key file if it exists (the command line, which leaves
    /// creating it to the server).
    pub fn load_existing(path: &Path) -> Result<Option<Self>, KeyError> {
        let shown = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                check_permissions(path)?;
                Self::parse(&text, &shown).map(Some)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(KeyError::Read { path: shown, source }),
        }
    }

    pub fn parse(text: &str, path: &str) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = || KeyError::Format {
                path: path.to_string(),
                line: i + 1,
            };
            let key32 = |b64: &str| {
                let bytes = STANDARD.decode(b64.trim()).map_err(|_| err())?;
                <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| err())
            };
            let fields: Vec<&str> = line.split_whitespace().collect();
            let material = match fields.as_slice() {
                [_, b64] => Material::Master(key32(b64)?),
                [_, "retired", kept @ ..] if kept.len() == RETAINED_PURPOSES.len() => {
                    let mut subkeys = Vec::new();
                    for (field, purpose) in kept.iter().zip(RETAINED_PURPOSES) {
                        let b64 = field
                            .strip_prefix(purpose)
                            .and_then(|r| r.strip_prefix(':'))
                            .ok_or_else(err)?;
                        subkeys.push(key32(b64)?);
                    }
                    Material::Retired(subkeys)
                }
                _ => return Err(err()),
            };
            let id = fields[0];
            if !valid_id(id) || keys.iter().any(|k: &KeyEntry| k.id == id) {
                return Err(err());
            }
            keys.push(KeyEntry {
                id: id.to_string(),
                material,
            });
        }
        match keys.first() {
            None => Err(KeyError::Empty { path: path.to_string() }),
            // Only a key with its master key can seal and sign.
            Some(first) if first.master().is_none() => Err(KeyError::RetiredFirst {
                path: path.to_string(),
                id: first.id.clone(),
            }),
            Some(_) => Ok(Self { keys }),
        }
    }

    /// A keyring with one random key, for tests and throwaway use.
    pub fn ephemeral() -> Self {
        Self {
            keys: vec![KeyEntry {
                id: "k1".into(),
                material: Material::Master(super::random_bytes::<KEY_LEN>()),
            }],
        }
    }

    fn active(&self) -> &KeyEntry {
        &self.keys[0]
    }

    fn active_master(&self) -> &[u8; KEY_LEN] {
        self.active().master().expect("parse puts a full key first")
    }

    fn subkey(master: &[u8; KEY_LEN], purpose: &str) -> [u8; 32] {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(master).expect("HMAC takes any key length");
        mac.update(b"latchkey subkey v1: ");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Encrypt `plaintext` with the active key. `context` (e.g. the user id)
    /// is authenticated but not stored: a value copied to another row fails
    /// to open.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> String {
        let key = self.active();
        let cipher = XChaCha20Poly1305::new(&Self::subkey(self.active_master(), "seal").into());
        let nonce_bytes = super::random_bytes::<NONCE_LEN>();
        let nonce = XNonce::from_slice(&nonce_bytes);
        let aad = format!("{SEAL_VERSION}.{}.{context}", key.id);
        let ct = cipher
            .encrypt(
                nonce,
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption of a short value cannot fail");
        let mut blob = nonce_bytes.to_vec();
        blob.extend_from_slice(&ct);
        format!("{SEAL_VERSION}.{}.{}", key.id, URL_SAFE_NO_PAD.encode(blob))
    }

    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, UnsealError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some(version), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(UnsealError::Malformed);
        };
        if version != SEAL_VERSION {
            return Err(UnsealError::Malformed);
        }
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| UnsealError::UnknownKey(id.to_string()))?;
        let master = key.master().ok_or_else(|| UnsealError::Retired(id.to_string()))?;
        let blob = URL_SAFE_NO_PAD.decode(b64).map_err(|_| UnsealError::Malformed)?;
        if blob.len() < NONCE_LEN + 16 {
            return Err(UnsealError::Malformed);
        }
        let (nonce, ct) = blob.split_at(NONCE_LEN);
        let cipher = XChaCha20Poly1305::new(&Self::subkey(master, "seal").into());
        let aad = format!("{SEAL_VERSION}.{id}.{context}");
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| UnsealError::Tampered)
    }

    /// True when `sealed` was made with an older key and should be re-sealed.
    pub fn is_stale(&self, sealed: &str) -> bool {
        sealed.split('.').nth(1) != Some(self.active().id.as_str())
    }

    /// Keyed hash of a recovery code under the active key: `ID:HEX`.
    pub fn recovery_hash(&self, canonical_code: &str) -> String {
        Self::recovery_hash_with(self.active(), canonical_code).expect("the active key is a full key")
    }

    /// The code's keyed hash under every key (retired ones too), to find it
    /// whichever key made it.
    pub fn recovery_hash_candidates(&self, canonical_code: &str) -> Vec<String> {
        self.keys
            .iter()
            .filter_map(|k| Self::recovery_hash_with(k, canonical_code))
            .collect()
    }

    fn recovery_hash_with(key: &KeyEntry, canonical_code: &str) -> Option<String> {
        let sub = key.subkey("recovery-code")?;
        Some(format!("{}:{}", key.id, hex(&hmac(&sub, canonical_code.as_bytes()))))
    }

    /// HMAC-SHA256 under the active key's sub-key for `purpose`: what new
    /// values are made with.
    pub fn mac(&self, purpose: &str, data: &[u8]) -> [u8; 32] {
        hmac(&Self::subkey(self.active_master(), purpose), data)
    }

    /// The same MAC under every key that can make one for `purpose`, the
    /// active key first: to check or look up a value made before a rotation.
    pub fn mac_candidates(&self, purpose: &str, data: &[u8]) -> Vec<[u8; 32]> {
        self.keys
            .iter()
            .filter_map(|k| k.subkey(purpose))
            .map(|sub| hmac(&sub, data))
            .collect()
    }

    /// The MAC under the key `id`, if the file holds that key's sub-key for
    /// `purpose` (re-keying what that key made).
    pub fn mac_with(&self, id: &str, purpose: &str, data: &[u8]) -> Option<[u8; 32]> {
        let sub = self.keys.iter().find(|k| k.id == id)?.subkey(purpose)?;
        Some(hmac(&sub, data))
    }

    /// (key id, fingerprint) of every full key: a MAC of a constant, which
    /// tells whether two key files hold the same key without revealing it.
    pub fn fingerprints(&self) -> Vec<(String, String)> {
        self.keys
            .iter()
            .filter_map(|k| Some((k.id.clone(), fingerprint(k.master()?))))
            .collect()
    }

    /// 64 bytes for the session cookie's signing and encryption.
    pub fn cookie_key_material(&self) -> [u8; 64] {
        Self::cookie_material(self.active()).expect("the active key is a full key")
    }

    /// The session cookie keys of every other key (full or retired): a
    /// cookie made under one of them is accepted and moved to the active
    /// key (`web::key_rollover`).
    pub fn older_cookie_key_materials(&self) -> Vec<[u8; 64]> {
        self.keys[1..].iter().filter_map(Self::cookie_material).collect()
    }

    fn cookie_material(key: &KeyEntry) -> Option<[u8; 64]> {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&key.subkey("cookie-a")?);
        out[32..].copy_from_slice(&key.subkey("cookie-b")?);
        Some(out)
    }

    // ------------------------------------------------------------ rotation

    /// The id of the active key.
    pub fn active_id(&self) -> &str {
        &self.active().id
    }

    /// Every key id, the active one first, with whether it is retired.
    pub fn ids(&self) -> Vec<(String, bool)> {
        self.keys.iter().map(|k| (k.id.clone(), k.master().is_none())).collect()
    }

    /// Whether the file holds the full (master) key `id`.
    pub fn holds_master(&self, id: &str) -> bool {
        self.keys.iter().any(|k| k.id == id && k.master().is_some())
    }

    /// Add a fresh random key as the last, not yet active, key.
    pub fn add_key(&mut self, id: &str) -> Result<(), String> {
        if !valid_id(id) || self.keys.iter().any(|k| k.id == id) {
            return Err(format!("`{id}` cannot be a new key id"));
        }
        self.keys.push(KeyEntry {
            id: id.to_string(),
            material: Material::Master(super::random_bytes::<KEY_LEN>()),
        });
        Ok(())
    }

    /// Make the full key `id` the active one (the first).
    pub fn activate(&mut self, id: &str) -> Result<(), String> {
        let i = self
            .keys
            .iter()
            .position(|k| k.id == id && k.master().is_some())
            .ok_or_else(|| format!("the key file holds no full key `{id}`"))?;
        let key = self.keys.remove(i);
        self.keys.insert(0, key);
        Ok(())
    }

    /// Retire the key `id`: forget its master key, keep the sub-keys that
    /// check what people hold (`RETAINED_PURPOSES`). Never the active key.
    pub fn retire(&mut self, id: &str) -> Result<(), String> {
        let key = self.keys[1..]
            .iter_mut()
            .find(|k| k.id == id)
            .ok_or_else(|| format!("`{id}` is not an inactive key of this file"))?;
        let kept = RETAINED_PURPOSES
            .iter()
            .map(|p| key.subkey(p).expect("every key keeps the retained purposes"))
            .collect();
        key.material = Material::Retired(kept);
        Ok(())
    }

    /// Remove the retired key `id` from the file altogether.
    pub fn drop_retired(&mut self, id: &str) {
        self.keys.retain(|k| k.id != id || k.master().is_some());
    }

    /// The key file's text.
    pub fn to_file_text(&self) -> String {
        let mut text = String::from(
            "# Latchkey server keys, one per line: the first is the active key.\n\
             # Managed by `latchkey key rotate`; keep this file private (mode 0600) and backed up.\n",
        );
        for k in &self.keys {
            text.push_str(&k.line());
            text.push('\n');
        }
        text
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 16 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn hmac(key: &[u8; KEY_LEN], data: &[u8]) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn fingerprint(master: &[u8; KEY_LEN]) -> String {
    hex(&Keyring::subkey(master, "fingerprint")[..16])
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Create `path` with `contents`, readable only by its owner, unless it
/// exists. Returns `false` (and leaves the existing file alone) when another
/// process created it first. The file never exists half-written: the
/// contents are written and synced under a temporary name in the same
/// directory, then linked to `path` (which fails if `path` exists), and the
/// directory is synced so the name survives a crash.
pub fn publish_private_file(path: &Path, contents: &[u8]) -> std::io::Result<bool> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", hex(&super::random_bytes::<8>())));
    let result = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        drop(f);
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => {
                #[cfg(unix)]
                if let Ok(d) = std::fs::File::open(&dir) {
                    let _ = d.sync_all();
                }
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Replace `path` with `contents`, readable only by its owner: written and
/// synced under a temporary name in the same directory, then renamed over
/// `path`, so a reader sees the old file or the new one, never half of one.
pub fn replace_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", hex(&super::random_bytes::<8>())));
    let result = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        #[cfg(unix)]
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn check_permissions(path: &Path) -> Result<(), KeyError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|source| KeyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.display().to_string(),
                mode,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_binding() {
        let ring = Keyring::ephemeral();
        let sealed = ring.seal(b"secret bytes", "user:1");
        assert!(sealed.starts_with("v1.k1."));
        assert!(!sealed.contains("secret"));
        assert_eq!(ring.open(&sealed, "user:1").unwrap(), b"secret bytes");
        assert_eq!(ring.open(&sealed, "user:2"), Err(UnsealError::Tampered));
        // Flip one character of the ciphertext.
        let mut bad = sealed.clone().into_bytes();
        let last = bad.len() - 3;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        assert!(ring.open(std::str::from_utf8(&bad).unwrap(), "user:1").is_err());
        assert_eq!(ring.open("nonsense", "user:1"), Err(UnsealError::Malformed));
        // Two seals of one value differ (random nonce).
        assert_ne!(sealed, ring.seal(b"secret bytes", "user:1"));
    }

    #[test]
    fn rotation_keeps_old_values_readable() {
        let old = Keyring::parse(&format!("k1 {}\n", STANDARD.encode([7u8; 32])), "t").unwrap();
        let sealed = old.seal(b"x", "c");
        let old_hash = old.recovery_hash("CODE");
        let rotated = Keyring::parse(
            &format!(
                "# new first\nk2 {}\nk1 {}\n",
                STANDARD.encode([9u8; 32]),
                STANDARD.encode([7u8; 32])
            ),
            "t",
        )
        .unwrap();
        assert_eq!(rotated.open(&sealed, "c").unwrap(), b"x");
        assert!(rotated.is_stale(&sealed));
        assert!(rotated.seal(b"x", "c").starts_with("v1.k2."));
        assert!(rotated.recovery_hash_candidates("CODE").contains(&old_hash));
        let only_new = Keyring::parse(&format!("k2 {}\n", STANDARD.encode([9u8; 32])), "t").unwrap();
        assert_eq!(only_new.open(&sealed, "c"), Err(UnsealError::UnknownKey("k1".into())));
    }

    #[test]
    fn retired_keys_check_but_make_and_open_nothing() {
        let mut ring = Keyring::parse(&format!("k1 {}\n", STANDARD.encode([7u8; 32])), "t").unwrap();
        let sealed = ring.seal(b"x", "c");
        let code = ring.recovery_hash("CODE");
        let csrf = ring.mac("csrf", b"nonce");
        let old_cookie = ring.cookie_key_material();
        ring.add_key("k2").unwrap();
        assert_eq!(ring.active_id(), "k1", "a new key is not active until activated");
        ring.activate("k2").unwrap();
        assert_eq!(ring.active_id(), "k2");
        assert!(ring.retire("k2").is_err(), "never the active key");
        ring.retire("k1").unwrap();
        // Written and read back: the retired line holds no master key.
        let text = ring.to_file_text();
        assert!(text.contains("k1 retired recovery-code:"));
        assert!(!text.contains(&STANDARD.encode([7u8; 32])));
        let ring = Keyring::parse(&text, "t").unwrap();
        assert_eq!(ring.ids(), vec![("k2".into(), false), ("k1".into(), true)]);
        assert!(!ring.holds_master("k1"));
        assert_eq!(ring.open(&sealed, "c"), Err(UnsealError::Retired("k1".into())));
        assert!(ring.recovery_hash_candidates("CODE").contains(&code));
        assert!(ring.mac_candidates("csrf", b"nonce").contains(&csrf));
        assert_ne!(ring.mac("csrf", b"nonce"), csrf, "new values use the new key");
        assert_eq!(ring.older_cookie_key_materials(), vec![old_cookie]);
        assert!(ring.mac_with("k1", "throttle-account", b"x").is_none());
        assert_eq!(ring.fingerprints().len(), 1);
        // A retired key cannot be the active one.
        let bad = text.replace("k2 ", "k9 ").lines().rev().collect::<Vec<_>>().join("\n");
        assert!(matches!(Keyring::parse(&bad, "t"), Err(KeyError::RetiredFirst { .. })));
        let mut ring = ring;
        ring.drop_retired("k1");
        assert_eq!(ring.ids().len(), 1);
    }

    #[test]
    fn parse_refuses_bad_files() {
        assert!(matches!(Keyring::parse("", "t"), Err(KeyError::Empty { .. })));
        assert!(matches!(
            Keyring::parse("k1 c2hvcnQ=", "t"),
            Err(KeyError::Format { .. })
        ));
        assert!(matches!(
            Keyring::parse("justonefield", "t"),
            Err(KeyError::Format { .. })
        ));
        let k = STANDARD.encode([1u8; 32]);
        assert!(matches!(
            Keyring::parse(&format!("k1 {k}\nk1 {k}"), "t"),
            Err(KeyError::Format { .. })
        ));
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.key");
        let a = Keyring::load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let b = Keyring::load_or_create(&path).unwrap();
        assert_eq!(a.recovery_hash("X"), b.recovery_hash("X"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                Keyring::load_or_create(&path),
                Err(KeyError::Permissions { .. })
            ));
        }
    }

    #[test]
    fn instances_creating_the_key_at_once_all_get_the_same_key() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("shared.key");
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    let (path, barrier) = (path.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        Keyring::load_or_create(&path).map(|k| k.fingerprints())
                    })
                })
                .collect();
            let prints: Vec<_> = threads.into_iter().map(|t| t.join().unwrap().unwrap()).collect();
            assert!(prints.windows(2).all(|w| w[0] == w[1]), "one key for all");
            // Only the key file is left: no temporary files.
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        }
    }

    #[test]
    fn fingerprints_tell_keys_apart() {
        let a = Keyring::parse(&format!("k1 {}", STANDARD.encode([1u8; 32])), "t").unwrap();
        let b = Keyring::parse(&format!("k1 {}", STANDARD.encode([2u8; 32])), "t").unwrap();
        assert_eq!(a.fingerprints(), a.fingerprints());
        assert_ne!(a.fingerprints(), b.fingerprints());
        assert_eq!(a.fingerprints()[0].0, "k1");
    }

    #[test]
    fn recovery_hashes_are_keyed() {
        let a = Keyring::ephemeral();
        let b = Keyring::ephemeral();
        assert_ne!(a.recovery_hash("ABC"), b.recovery_hash("ABC"));
        assert_eq!(a.recovery_hash("ABC"), a.recovery_hash("ABC"));
        assert!(!a.recovery_hash("ABC").contains("ABC"));
    }
}
