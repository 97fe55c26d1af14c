//! API keys: generated at random, shown once, stored only as SHA-256 hashes.
//!
//! The key file holds one key per line, `sha256:<64 hex digits> <name>`; `#` starts a
//! comment. A request presents its key as `Authorization: Bearer <key>` or `X-API-Key:
//! <key>`; its hash is compared with every stored hash in constant time. Keys are 256
//! random bits, so a fast hash is enough (nothing to brute-force).

use std::path::Path;

use sha2::{Digest, Sha256};
use siamese::error::{Result, SiameseError};
use subtle::ConstantTimeEq;

/// The hashes of the accepted keys.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    hashes: Vec<([u8; 32], String)>,
}

/// What a request's credentials amount to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// A valid key (its name).
    Key(String),
    /// No key was presented.
    Missing,
    /// A key was presented and matched none.
    Wrong,
}

fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ApiKeys {
    /// Reads a key file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| SiameseError::io(path, e))?;
        let mut hashes = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |msg: &str| SiameseError::format(path, format!("line {}: {msg}", n + 1));
            let (h, name) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let digits = h
                .strip_prefix("sha256:")
                .ok_or_else(|| bad("expected `sha256:<64 hex digits> <name>`"))?;
            if digits.len() != 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad("the hash must be 64 hex digits"));
            }
            let mut bytes = [0u8; 32];
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).map_err(|_| bad("hex"))?;
            }
            hashes.push((bytes, name.trim().to_string()));
        }
        if hashes.is_empty() {
            return Err(SiameseError::format(
                path,
                "holds no key (create one with `siamese keygen --api-keys FILE`)",
            ));
        }
        Ok(Self { hashes })
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Checks a presented key (or its absence).
    pub fn check(&self, presented: Option<&str>) -> Access {
        let Some(key) = presented else {
            return Access::Missing;
        };
        let h = hash(key);
        let mut found: Option<&str> = None;
        // Every stored hash is compared, in constant time each.
        for (stored, name) in &self.hashes {
            if bool::from(stored.ct_eq(&h)) {
                found = Some(name);
            }
        }
        match found {
            Some(name) => Access::Key(name.to_string()),
            None => Access::Wrong,
        }
    }
}

/// Makes a new random key, appends its hash (with `name`) to the key file `path`
/// atomically, and returns the key: the only time it is ever shown.
pub fn keygen(path: &Path, name: &str) -> Result<String> {
    use rand::Rng;
    if name.chars().any(|c| c.is_whitespace() || c == '#') {
        return Err(SiameseError::invalid(
            "--name",
            "must not contain spaces or `#`",
        ));
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = format!("sk_{}", hex(&bytes));
    let mut text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "# siamese serve API keys: sha256:<hash of the key> <name>\n".to_string()
        }
        Err(e) => return Err(SiameseError::io(path, e)),
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("sha256:{} {name}\n", hex(&hash(&key))));
    siamese::atomic::write_file_atomic(path, text.as_bytes())?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_accepted_and_only_their_hashes_are_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let k1 = keygen(&path, "ops").unwrap();
        let k2 = keygen(&path, "door").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&k1) && !text.contains(&k2[3..]));
        let keys = ApiKeys::load(&path).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.check(Some(&k1)), Access::Key("ops".into()));
        assert_eq!(keys.check(Some(&k2)), Access::Key("door".into()));
        assert_eq!(keys.check(Some("sk_nope")), Access::Wrong);
        assert_eq!(keys.check(None), Access::Missing);
        std::fs::write(&path, "sha256:abc ops\n").unwrap();
        let err = ApiKeys::load(&path).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("64 hex"), "{err}");
    }
}
