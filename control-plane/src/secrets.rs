//! Secrets at rest: what the control plane stores that must never be readable from the store
//! alone (certificates' private keys; ACME account keys), sealed with AES-256-GCM under a key
//! from the control plane's config (`[secrets]`), never the store.
//!
//! - A [`Keyring`] holds the primary key (seals everything new) and older keys (still open what
//!   they sealed). Each key's id is derived from the key (the first 8 bytes of a SHA-256 over a
//!   label and the key, in hex), so an operator names only files, and a sealed value says which
//!   key opens it.
//! - [`Sealed`] is what a store keeps: key id, a random 96-bit nonce and the ciphertext with its
//!   tag. The caller passes associated data that names what the secret belongs to (e.g. the
//!   certificate's tenant, service and name), so a sealed value copied onto another record does
//!   not open there.
//! - Rotation: write a new key file, make it `key_file`, move the old one to `old_key_files`,
//!   restart; start-up re-seals every value sealed under an old key (`certs::reseal_all`) and
//!   logs how many. Once that has run on every replica, the old file can go.
//! - Key files hold 64 hex digits (32 bytes; `openssl rand -hex 32 > secrets.key`), mode 0600.
//!   With the embedded store and no `key_file`, one is generated beside the store's file on
//!   first start. Replicas on PostgreSQL must share one, so there it must be configured.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// `[secrets]` in the control plane's config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsSettings {
    /// The file holding the key that seals private keys (64 hex digits, mode 0600), relative
    /// to the config file's directory. Required with `store.postgres` (replicas share it).
    /// Default: with the embedded store, `<data>.secrets.key` beside the store's file,
    /// generated on first start.
    pub key_file: Option<PathBuf>,
    /// Earlier key files: they still open what they sealed; start-up re-seals it under
    /// `key_file`. Default: none.
    pub old_key_files: Vec<PathBuf>,
}

impl SecretsSettings {
    /// Resolves the paths against the config file's directory.
    pub fn resolve(&mut self, base: &Path) {
        if let Some(file) = &mut self.key_file {
            *file = base.join(&*file);
        }
        for file in &mut self.old_key_files {
            *file = base.join(&*file);
        }
    }

    /// The key file used: the configured one, or the default beside the embedded store.
    pub fn key_path(&self, data: &Path) -> Option<PathBuf> {
        match &self.key_file {
            Some(file) => Some(file.clone()),
            None if data.as_os_str().is_empty() => None,
            None => {
                let mut name = data.file_name().unwrap_or_default().to_os_string();
                name.push(".secrets.key");
                Some(data.with_file_name(name))
            }
        }
    }
}

/// A sealed secret as stored: `{"key_id": "…", "nonce": "…", "ciphertext": "…"}` (hex).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: String,
    /// The ciphertext followed by the 16-byte GCM tag.
    pub ciphertext: String,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

/// Why a secret could not be sealed or opened, or a key file not used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretsError {
    #[error("secrets.{field}: {path}: {reason}")]
    KeyFile { field: &'static str, path: String, reason: String },
    #[error("secrets: no key file: set secrets.key_file (required with store.postgres)")]
    NoKey,
    #[error("sealed with key {0}, which is not configured (secrets.key_file or secrets.old_key_files)")]
    UnknownKey(String),
    /// Wrong key, tampered ciphertext, or sealed for another record.
    #[error("sealed value does not open: wrong key, altered, or sealed for another record")]
    Tampered,
    #[error("no randomness from the system")]
    Random,
}

struct Key {
    id: String,
    key: LessSafeKey,
}

/// The keys: the first seals, all open.
pub struct Keyring {
    keys: Vec<Key>,
    random: SystemRandom,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("ids", &self.keys.iter().map(|k| &k.id).collect::<Vec<_>>()).finish()
    }
}

impl Keyring {
    /// From raw 32-byte keys, the first primary (tests, and [`Keyring::load`]).
    pub fn from_keys(keys: &[[u8; 32]]) -> Result<Self, SecretsError> {
        if keys.is_empty() {
            return Err(SecretsError::NoKey);
        }
        let keys = keys
            .iter()
            .map(|raw| {
                let unbound = UnboundKey::new(&AES_256_GCM, raw).map_err(|_| SecretsError::NoKey)?;
                Ok(Key { id: key_id(raw), key: LessSafeKey::new(unbound) })
            })
            .collect::<Result<_, SecretsError>>()?;
        Ok(Self { keys, random: SystemRandom::new() })
    }

    /// Reads the key files `settings` name; with none configured and `data` set (the embedded
    /// store), reads or creates (mode 0600) the default file beside it.
    pub fn load(settings: &SecretsSettings, data: &Path) -> Result<Self, SecretsError> {
        let primary = settings.key_path(data).ok_or(SecretsError::NoKey)?;
        let generate = settings.key_file.is_none();
        let mut keys = vec![read_or_create(&primary, generate)?];
        for old in &settings.old_key_files {
            keys.push(read_key(old, "old_key_files")?);
        }
        Self::from_keys(&keys)
    }

    /// The primary key's id.
    pub fn primary_id(&self) -> &str {
        self.keys.first().map_or("", |k| k.id.as_str())
    }

    /// Seals `plain` under the primary key, bound to `aad`.
    pub fn seal(&self, plain: &[u8], aad: &[u8]) -> Result<Sealed, SecretsError> {
        let key = self.keys.first().ok_or(SecretsError::NoKey)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).map_err(|_| SecretsError::Random)?;
        let mut data = plain.to_vec();
        key.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut data)
            .map_err(|_| SecretsError::Tampered)?;
        Ok(Sealed { key_id: key.id.clone(), nonce: hex(&nonce), ciphertext: hex(&data) })
    }

    /// Opens `sealed` with the key it names, checking `aad`.
    pub fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<Vec<u8>, SecretsError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| SecretsError::UnknownKey(sealed.key_id.clone()))?;
        let nonce: [u8; NONCE_LEN] =
            unhex(&sealed.nonce).and_then(|n| n.try_into().ok()).ok_or(SecretsError::Tampered)?;
        let mut data = unhex(&sealed.ciphertext).ok_or(SecretsError::Tampered)?;
        let plain = key
            .key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut data)
            .map_err(|_| SecretsError::Tampered)?;
        Ok(plain.to_vec())
    }

    /// Whether `sealed` is under an old key (start-up re-seals it).
    pub fn is_old(&self, sealed: &Sealed) -> bool {
        sealed.key_id != self.primary_id()
    }
}

/// A key's id: SHA-256 of a label and the key, first 8 bytes in hex. Not the key, nor enough
/// to find it.
fn key_id(raw: &[u8; 32]) -> String {
    let mut input = b"outpost secrets key id\0".to_vec();
    input.extend_from_slice(raw);
    hex(&crate::auth::sha256(&input)[..8])
}

fn read_key(path: &Path, field: &'static str) -> Result<[u8; 32], SecretsError> {
    let fail = |reason: String| SecretsError::KeyFile { field, path: path.display().to_string(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    unhex(text.trim())
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| fail("not 64 hex digits (32 bytes); make one with `openssl rand -hex 32`".to_owned()))
}

/// Reads `path`; when it does not exist and `generate`, writes a new random key there first
/// (created with mode 0600, never replacing a file).
fn read_or_create(path: &Path, generate: bool) -> Result<[u8; 32], SecretsError> {
    if generate && !path.exists() {
        let fail = |reason: String| SecretsError::KeyFile {
            field: "key_file",
            path: path.display().to_string(),
            reason: format!("cannot create the generated key: {reason}"),
        };
        let mut raw = [0u8; 32];
        SystemRandom::new().fill(&mut raw).map_err(|_| SecretsError::Random)?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(|e| fail(e.to_string()))?;
        file.write_all(format!("{}\n", hex(&raw)).as_bytes()).map_err(|e| fail(e.to_string()))?;
        file.sync_all().map_err(|e| fail(e.to_string()))?;
        tracing::info!(path = %path.display(), "secrets: generated the key that seals private keys (keep it with the store's backups)");
    }
    read_key(path, "key_file")
}

fn hex(bytes: &[u8]) -> String {
    crate::auth::hex(bytes)
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| text.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok())).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const A: [u8; 32] = [1; 32];
    const B: [u8; 32] = [2; 32];

    #[test]
    fn a_sealed_value_opens_with_its_key_and_aad_only() {
        let ring = Keyring::from_keys(&[A]).unwrap();
        let sealed = ring.seal(b"-----BEGIN PRIVATE KEY-----", b"acme/shop/www").unwrap();
        assert!(!sealed.ciphertext.contains(&hex(b"BEGIN")), "not in clear");
        assert_eq!(ring.open(&sealed, b"acme/shop/www").unwrap(), b"-----BEGIN PRIVATE KEY-----");
        let again = ring.seal(b"-----BEGIN PRIVATE KEY-----", b"acme/shop/www").unwrap();
        assert_ne!(again.nonce, sealed.nonce, "a fresh nonce per seal");

        // (what is wrong, the sealed value, the keyring, the aad, the error)
        let mut flipped = sealed.clone();
        let last = flipped.ciphertext.pop().unwrap();
        flipped.ciphertext.push(if last == '0' { '1' } else { '0' });
        let mut bad_nonce = sealed.clone();
        bad_nonce.nonce = "00".repeat(NONCE_LEN);
        let mut short = sealed.clone();
        short.nonce = "00".to_owned();
        let mut foreign = sealed.clone();
        foreign.key_id = key_id(&A).replace(|_| true, "f");
        let wrong_key = {
            let mut s = sealed.clone();
            s.key_id = key_id(&B);
            s
        };
        let cases: Vec<(&str, Sealed, Keyring, &[u8], SecretsError)> = vec![
            (
                "ciphertext altered",
                flipped,
                Keyring::from_keys(&[A]).unwrap(),
                b"acme/shop/www",
                SecretsError::Tampered,
            ),
            ("nonce altered", bad_nonce, Keyring::from_keys(&[A]).unwrap(), b"acme/shop/www", SecretsError::Tampered),
            ("nonce not 12 bytes", short, Keyring::from_keys(&[A]).unwrap(), b"acme/shop/www", SecretsError::Tampered),
            (
                "sealed for another record",
                sealed.clone(),
                Keyring::from_keys(&[A]).unwrap(),
                b"evil/shop/www",
                SecretsError::Tampered,
            ),
            (
                "key not configured",
                foreign,
                Keyring::from_keys(&[A]).unwrap(),
                b"acme/shop/www",
                SecretsError::UnknownKey("f".repeat(16)),
            ),
            (
                "the id of another key",
                wrong_key,
                Keyring::from_keys(&[B]).unwrap(),
                b"acme/shop/www",
                SecretsError::Tampered,
            ),
        ];
        for (what, sealed, ring, aad, want) in cases {
            assert_eq!(ring.open(&sealed, aad), Err(want), "{what}");
        }
    }

    #[test]
    fn a_new_primary_seals_and_the_old_key_still_opens() {
        let old = Keyring::from_keys(&[A]).unwrap();
        let sealed = old.seal(b"key", b"r").unwrap();
        let rotated = Keyring::from_keys(&[B, A]).unwrap();
        assert!(rotated.is_old(&sealed));
        assert_eq!(rotated.open(&sealed, b"r").unwrap(), b"key");
        let resealed = rotated.seal(&rotated.open(&sealed, b"r").unwrap(), b"r").unwrap();
        assert!(!rotated.is_old(&resealed));
        assert_eq!(resealed.key_id, key_id(&B));
        assert_eq!(Keyring::from_keys(&[B]).unwrap().open(&resealed, b"r").unwrap(), b"key");
    }

    #[test]
    fn the_default_key_file_is_generated_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("cp.redb");
        let settings = SecretsSettings::default();
        let first = Keyring::load(&settings, &data).unwrap();
        let path = dir.path().join("cp.redb.secrets.key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let second = Keyring::load(&settings, &data).unwrap();
        assert_eq!(first.primary_id(), second.primary_id(), "read back, not made anew");

        let missing = SecretsSettings { key_file: Some(dir.path().join("nope.key")), old_key_files: vec![] };
        let error = Keyring::load(&missing, &data).unwrap_err().to_string();
        assert!(error.starts_with("secrets.key_file: ") && error.contains("nope.key"), "{error}");
        std::fs::write(dir.path().join("short.key"), "abcd").unwrap();
        let short = SecretsSettings { key_file: Some(path), old_key_files: vec![dir.path().join("short.key")] };
        let error = Keyring::load(&short, &data).unwrap_err().to_string();
        assert!(error.contains("secrets.old_key_files") && error.contains("not 64 hex digits"), "{error}");
        assert_eq!(Keyring::load(&SecretsSettings::default(), Path::new("")).unwrap_err(), SecretsError::NoKey);
    }
}
