//! Where a gallery's identities and enrolled samples live: the [`GalleryStore`] trait and its
//! embedded implementation on SQLite.
//!
//! [`SqliteStore`] keeps one database file in WAL mode with `synchronous = FULL`: a write
//! returns only after its transaction is on disk, so an acknowledged enrolment survives a
//! `kill -9` or a power cut, and a write cut short leaves the previous state (SQLite's
//! journal). Tables:
//!
//! | table | columns |
//! |---|---|
//! | `meta` | `key`, `value`: the model the gallery is bound to and its embedding width |
//! | `identities` | `id`, `metadata` (JSON object), `created` (Unix seconds) |
//! | `samples` | `sample_id`, `identity`, `embedding` (little-endian `f32`), `fingerprint` (SHA-256 of the input, unique per identity), `raw` (the input, optional), `created` |
//!
//! Another engine (a distributed vector database) replaces it by implementing the trait.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Result, SiameseError};

/// Which model a gallery's embeddings come from; a gallery refuses a different model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The model's fingerprint (see [`crate::gallery::model_fingerprint`]).
    pub model: String,
    /// Embedding width.
    pub dim: usize,
}

/// An enrolled identity.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Identity {
    /// Its name.
    pub id: String,
    /// What the client stored with it (a JSON object).
    pub metadata: serde_json::Value,
    /// Samples enrolled.
    pub samples: usize,
    /// Creation time, Unix seconds.
    pub created: i64,
}

/// A sample to enrol.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSample {
    /// Its embedding.
    pub embedding: Vec<f32>,
    /// SHA-256 of the input: the same input twice under one identity is a conflict.
    pub fingerprint: [u8; 32],
    /// The input itself, when it is kept.
    pub raw: Option<Vec<u8>>,
}

impl NewSample {
    /// A sample of `embedding` computed from `input`, keeping the input when `keep_raw`.
    pub fn new(embedding: Vec<f32>, input: &[u8], keep_raw: bool) -> Self {
        use sha2::Digest;
        Self {
            embedding,
            fingerprint: sha2::Sha256::digest(input).into(),
            raw: keep_raw.then(|| input.to_vec()),
        }
    }
}

/// A stored sample.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredSample {
    /// Its id (unique in the gallery, never reused).
    pub sample_id: i64,
    /// Its identity.
    pub identity: String,
    /// Its embedding.
    #[serde(skip)]
    pub embedding: Vec<f32>,
    /// Whether the input itself is stored.
    pub has_raw: bool,
    /// Enrolment time, Unix seconds.
    pub created: i64,
}

/// Storage of identities and samples. Every write is durable when it returns.
pub trait GalleryStore: Send + Sync {
    /// The model the store is bound to, if any yet.
    fn binding(&self) -> Result<Option<Binding>>;
    /// Binds an empty store to a model.
    fn set_binding(&self, binding: &Binding) -> Result<()>;
    /// Creates identity `id` or replaces its metadata; whether it was created.
    fn put_identity(&self, id: &str, metadata: &serde_json::Value) -> Result<bool>;
    /// Identity `id`, if enrolled.
    fn identity(&self, id: &str) -> Result<Option<Identity>>;
    /// Identities in id order, `limit` of them from `offset`.
    fn identities(&self, offset: usize, limit: usize) -> Result<Vec<Identity>>;
    /// Deletes identity `id` and its samples; the ids of the samples removed.
    fn delete_identity(&self, id: &str) -> Result<Vec<i64>>;
    /// Enrols samples under `id` in one transaction; their ids.
    fn add_samples(&self, id: &str, samples: &[NewSample]) -> Result<Vec<i64>>;
    /// Deletes sample `sample_id` of identity `id`.
    fn delete_sample(&self, id: &str, sample_id: i64) -> Result<()>;
    /// The samples of identity `id`.
    fn samples(&self, id: &str) -> Result<Vec<StoredSample>>;
    /// Every sample, in id order (to build a search index).
    fn all_samples(&self) -> Result<Vec<StoredSample>>;
    /// The stored input of a sample, when it was kept.
    fn raw_sample(&self, id: &str, sample_id: i64) -> Result<Option<Vec<u8>>>;
}

/// A [`GalleryStore`] in one SQLite file (WAL mode, synchronous commits).
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS identities (
    id TEXT PRIMARY KEY, metadata TEXT NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS samples (
    sample_id INTEGER PRIMARY KEY AUTOINCREMENT,
    identity TEXT NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    embedding BLOB NOT NULL, fingerprint BLOB NOT NULL, raw BLOB, created INTEGER NOT NULL,
    UNIQUE (identity, fingerprint));
CREATE INDEX IF NOT EXISTS samples_by_identity ON samples(identity);
";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl SqliteStore {
    /// Opens (creating it if needed) the gallery database at `path`; `":memory:"` gives a
    /// private in-memory database.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let conn = Connection::open(&path).map_err(|e| storage(&path, e))?;
        let store = Self {
            path,
            conn: Mutex::new(conn),
        };
        store.with(|c| {
            c.busy_timeout(std::time::Duration::from_secs(5))?;
            let _mode: String = c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            c.execute_batch(
                "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;",
            )?;
            c.execute_batch(SCHEMA)
        })?;
        store.check_integrity()?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// SQLite's `PRAGMA quick_check`: an error naming the file unless it answers `ok`.
    pub fn check_integrity(&self) -> Result<()> {
        let answer: String = self.with(|c| c.query_row("PRAGMA quick_check", [], |r| r.get(0)))?;
        if answer != "ok" {
            return Err(SiameseError::Storage {
                path: self.path.clone(),
                message: format!("integrity check failed: {answer}"),
            });
        }
        Ok(())
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        // A panic while the lock was held cannot leave SQLite half-written (its own
        // transaction rolls back), so a poisoned lock is safe to take.
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(|e| storage(&self.path, e))
    }

    fn sample_row(&self, r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredSample> {
        let bytes: Vec<u8> = r.get(2)?;
        Ok(StoredSample {
            sample_id: r.get(0)?,
            identity: r.get(1)?,
            embedding: bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            has_raw: r.get(3)?,
            created: r.get(4)?,
        })
    }
}

fn storage(path: &Path, e: rusqlite::Error) -> SiameseError {
    SiameseError::Storage {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn not_found(id: &str) -> SiameseError {
    SiameseError::NotFound(format!("identity `{id}`"))
}

const SAMPLE_COLUMNS: &str = "sample_id, identity, embedding, raw IS NOT NULL, created";

impl GalleryStore for SqliteStore {
    fn binding(&self) -> Result<Option<Binding>> {
        let (model, dim): (Option<String>, Option<String>) = self.with(|c| {
            let get = |k: &str| {
                c.query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))
                    .optional()
            };
            Ok((get("model")?, get("dim")?))
        })?;
        match (model, dim) {
            (Some(model), Some(dim)) => {
                let dim = dim.parse().map_err(|_| SiameseError::Storage {
                    path: self.path.clone(),
                    message: format!("meta `dim` is `{dim}`, not a width"),
                })?;
                Ok(Some(Binding { model, dim }))
            }
            _ => Ok(None),
        }
    }

    fn set_binding(&self, binding: &Binding) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            for (k, v) in [
                ("model", binding.model.clone()),
                ("dim", binding.dim.to_string()),
            ] {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    params![k, v],
                )?;
            }
            tx.commit()
        })
    }

    fn put_identity(&self, id: &str, metadata: &serde_json::Value) -> Result<bool> {
        let text = metadata.to_string();
        self.with(|c| {
            let updated = c.execute(
                "UPDATE identities SET metadata = ?2 WHERE id = ?1",
                params![id, text],
            )?;
            if updated == 0 {
                c.execute(
                    "INSERT INTO identities (id, metadata, created) VALUES (?1, ?2, ?3)",
                    params![id, text, now()],
                )?;
            }
            Ok(updated == 0)
        })
    }

    fn identity(&self, id: &str) -> Result<Option<Identity>> {
        let row: Option<(String, i64, i64)> = self.with(|c| {
            c.query_row(
                "SELECT metadata, created,
                   (SELECT COUNT(*) FROM samples WHERE identity = ?1)
                 FROM identities WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
        })?;
        row.map(|(metadata, created, samples)| {
            Ok(Identity {
                id: id.to_string(),
                metadata: self.parse_metadata(id, &metadata)?,
                samples: samples as usize,
                created,
            })
        })
        .transpose()
    }

    fn identities(&self, offset: usize, limit: usize) -> Result<Vec<Identity>> {
        let rows: Vec<(String, String, i64, i64)> = self.with(|c| {
            let mut st = c.prepare(
                "SELECT i.id, i.metadata, i.created,
                   (SELECT COUNT(*) FROM samples s WHERE s.identity = i.id)
                 FROM identities i ORDER BY i.id LIMIT ?1 OFFSET ?2",
            )?;
            let rows = st.query_map(params![limit as i64, offset as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
            rows.collect()
        })?;
        rows.into_iter()
            .map(|(id, metadata, created, samples)| {
                let metadata = self.parse_metadata(&id, &metadata)?;
                Ok(Identity {
                    id,
                    metadata,
                    samples: samples as usize,
                    created,
                })
            })
            .collect()
    }

    fn delete_identity(&self, id: &str) -> Result<Vec<i64>> {
        let removed: Option<Vec<i64>> = self.with(|c| {
            let tx = c.transaction()?;
            let ids = {
                let mut st = tx.prepare("SELECT sample_id FROM samples WHERE identity = ?1")?;
                st.query_map([id], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<i64>>>()?
            };
            tx.execute("DELETE FROM samples WHERE identity = ?1", [id])?;
            let n = tx.execute("DELETE FROM identities WHERE id = ?1", [id])?;
            tx.commit()?;
            Ok((n > 0).then_some(ids))
        })?;
        removed.ok_or_else(|| not_found(id))
    }

    fn add_samples(&self, id: &str, samples: &[NewSample]) -> Result<Vec<i64>> {
        enum Outcome {
            Added(Vec<i64>),
            NoIdentity,
            Duplicate(usize, i64),
        }
        let outcome = self.with(|c| {
            let tx = c.transaction()?;
            let exists: Option<i64> = tx
                .query_row("SELECT 1 FROM identities WHERE id = ?1", [id], |r| r.get(0))
                .optional()?;
            if exists.is_none() {
                return Ok(Outcome::NoIdentity);
            }
            let mut ids = Vec::with_capacity(samples.len());
            for (k, s) in samples.iter().enumerate() {
                let dup: Option<i64> = tx
                    .query_row(
                        "SELECT sample_id FROM samples WHERE identity = ?1 AND fingerprint = ?2",
                        params![id, &s.fingerprint[..]],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(existing) = dup {
                    // Dropping the transaction rolls back the samples added before.
                    return Ok(Outcome::Duplicate(k, existing));
                }
                tx.execute(
                    "INSERT INTO samples (identity, embedding, fingerprint, raw, created)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id, to_bytes(&s.embedding), &s.fingerprint[..], s.raw, now()],
                )?;
                ids.push(tx.last_insert_rowid());
            }
            tx.commit()?;
            Ok(Outcome::Added(ids))
        })?;
        match outcome {
            Outcome::Added(ids) => Ok(ids),
            Outcome::NoIdentity => Err(not_found(id)),
            Outcome::Duplicate(k, existing) => Err(SiameseError::Conflict {
                what: format!("samples[{k}] of identity `{id}`"),
                message: format!("the same input is already enrolled as sample {existing}"),
            }),
        }
    }

    fn delete_sample(&self, id: &str, sample_id: i64) -> Result<()> {
        let n = self.with(|c| {
            c.execute(
                "DELETE FROM samples WHERE identity = ?1 AND sample_id = ?2",
                params![id, sample_id],
            )
        })?;
        if n == 0 {
            return Err(SiameseError::NotFound(format!(
                "sample {sample_id} of identity `{id}`"
            )));
        }
        Ok(())
    }

    fn samples(&self, id: &str) -> Result<Vec<StoredSample>> {
        if self.identity(id)?.is_none() {
            return Err(not_found(id));
        }
        self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {SAMPLE_COLUMNS} FROM samples WHERE identity = ?1 ORDER BY sample_id"
            ))?;
            let rows = st.query_map([id], |r| self.sample_row(r))?;
            rows.collect()
        })
    }

    fn all_samples(&self) -> Result<Vec<StoredSample>> {
        self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {SAMPLE_COLUMNS} FROM samples ORDER BY sample_id"
            ))?;
            let rows = st.query_map([], |r| self.sample_row(r))?;
            rows.collect()
        })
    }

    fn raw_sample(&self, id: &str, sample_id: i64) -> Result<Option<Vec<u8>>> {
        let row: Option<Option<Vec<u8>>> = self.with(|c| {
            c.query_row(
                "SELECT raw FROM samples WHERE identity = ?1 AND sample_id = ?2",
                params![id, sample_id],
                |r| r.get(0),
            )
            .optional()
        })?;
        row.ok_or_else(|| SiameseError::NotFound(format!("sample {sample_id} of identity `{id}`")))
    }
}

impl SqliteStore {
    fn parse_metadata(&self, id: &str, text: &str) -> Result<serde_json::Value> {
        serde_json::from_str(text).map_err(|e| SiameseError::Storage {
            path: self.path.clone(),
            message: format!("metadata of identity `{id}` is not JSON: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(v: f32, input: &str) -> NewSample {
        NewSample::new(vec![v, -v], input.as_bytes(), true)
    }

    #[test]
    fn writes_survive_reopening_and_conflicts_roll_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.sqlite");
        {
            let s = SqliteStore::open(&path).unwrap();
            assert_eq!(s.binding().unwrap(), None);
            s.set_binding(&Binding {
                model: "m".into(),
                dim: 2,
            })
            .unwrap();
            assert!(s.put_identity("alice", &json!({"team": 1})).unwrap());
            assert!(!s.put_identity("alice", &json!({"team": 2})).unwrap());
            let ids = s
                .add_samples("alice", &[sample(1.0, "a"), sample(2.0, "b")])
                .unwrap();
            assert_eq!(ids.len(), 2);
            // The second sample repeats "a": nothing of this call is kept.
            let err = s
                .add_samples("alice", &[sample(3.0, "c"), sample(1.0, "a")])
                .unwrap_err();
            assert!(matches!(err, SiameseError::Conflict { .. }), "{err}");
            assert!(err.to_string().contains("samples[1]"), "{err}");
            let err = s.add_samples("bob", &[sample(1.0, "a")]).unwrap_err();
            assert!(matches!(err, SiameseError::NotFound(_)), "{err}");
        }
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.binding().unwrap().unwrap().dim, 2);
        let alice = s.identity("alice").unwrap().unwrap();
        assert_eq!(
            (alice.samples, alice.metadata["team"].as_i64()),
            (2, Some(2))
        );
        let all = s.all_samples().unwrap();
        assert_eq!(all[1].embedding, vec![2.0, -2.0]);
        assert_eq!(
            s.raw_sample("alice", all[0].sample_id).unwrap().unwrap(),
            b"a"
        );
        s.delete_sample("alice", all[0].sample_id).unwrap();
        assert!(s.delete_sample("alice", all[0].sample_id).is_err());
        assert_eq!(s.delete_identity("alice").unwrap(), vec![all[1].sample_id]);
        assert!(matches!(
            s.delete_identity("alice").unwrap_err(),
            SiameseError::NotFound(_)
        ));
        assert!(s.all_samples().unwrap().is_empty());
        assert!(s.identities(0, 10).unwrap().is_empty());
    }

    #[test]
    fn a_file_that_is_not_a_database_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.sqlite");
        std::fs::write(&path, vec![7u8; 4096]).unwrap();
        let err = SqliteStore::open(&path).unwrap_err().to_string();
        assert!(err.contains("g.sqlite"), "{err}");
    }
}
