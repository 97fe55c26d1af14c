//! Saving and loading model directories.
//!
//! A model directory holds:
//!
//! | file                | content                                                      |
//! |---------------------|--------------------------------------------------------------|
//! | `config.json`       | format tag, version and the [`ModelConfig`]                  |
//! | `model.safetensors` | the weights, named by their path in the module (`encoder…`) |
//!
//! Writes are atomic at the directory level: everything is written to a sibling temporary
//! directory, which then replaces the target with renames, so a crash never leaves a
//! half-written model where a good one was.

use std::fs;
use std::path::{Path, PathBuf};

use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::config::ModelConfig;
use crate::error::{Result, SiameseError};
use crate::siamese::SiameseNetwork;

/// Name of the configuration file in a model directory.
pub const CONFIG_FILE: &str = "config.json";
/// Name of the weights file in a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Format tag written into `config.json`.
pub const FORMAT: &str = "siamese-model";
/// Current format version.
pub const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    format: String,
    version: u32,
    model: ModelConfig,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    extra: serde_json::Map<String, serde_json::Value>,
}

/// Extra named entries stored beside the model config (e.g. a calibrated threshold).
pub type Extra = serde_json::Map<String, serde_json::Value>;

/// Writes `files` (name, bytes) as the directory `dir`, atomically replacing any previous one.
pub fn write_dir_atomic(dir: &Path, files: &[(&str, Vec<u8>)]) -> Result<()> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(|e| SiameseError::io(&parent, e))?;
    let name = dir
        .file_name()
        .ok_or_else(|| {
            SiameseError::config("model directory", format!("{} has no name", dir.display()))
        })?
        .to_string_lossy()
        .into_owned();
    let pid = std::process::id();
    let tmp = parent.join(format!(".{name}.tmp-{pid}"));
    let old = parent.join(format!(".{name}.old-{pid}"));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir(&tmp).map_err(|e| SiameseError::io(&tmp, e))?;
    let result = (|| {
        for (file, bytes) in files {
            let path = tmp.join(file);
            fs::write(&path, bytes).map_err(|e| SiameseError::io(&path, e))?;
            let f = fs::File::open(&path).map_err(|e| SiameseError::io(&path, e))?;
            f.sync_all().map_err(|e| SiameseError::io(&path, e))?;
        }
        if dir.exists() {
            if !dir.is_dir() {
                return Err(SiameseError::config(
                    "model directory",
                    format!("{} exists and is not a directory", dir.display()),
                ));
            }
            fs::rename(dir, &old).map_err(|e| SiameseError::io(dir, e))?;
        }
        if let Err(e) = fs::rename(&tmp, dir) {
            // Put the previous model back before reporting.
            let _ = fs::rename(&old, dir);
            return Err(SiameseError::io(dir, e));
        }
        let _ = fs::remove_dir_all(&old);
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

/// Writes one file atomically: a temporary sibling, then a rename over `path`.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| {
            SiameseError::config("output", format!("{} has no file name", path.display()))
        })?
        .to_string_lossy()
        .into_owned();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = fs::write(&tmp, bytes)
        .and_then(|()| fs::File::open(&tmp)?.sync_all())
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(SiameseError::io(path, e));
    }
    Ok(())
}

/// Saves `network` with its `config` (and `extra` entries, and extra `files` such as
/// `history.csv`) as the model directory `dir`.
pub fn save_model(
    dir: &Path,
    config: &ModelConfig,
    network: &SiameseNetwork,
    extra: &Extra,
    files: &[(&str, Vec<u8>)],
) -> Result<()> {
    let file = ConfigFile {
        format: FORMAT.into(),
        version: VERSION,
        model: config.clone(),
        extra: extra.clone(),
    };
    let json = serde_json::to_vec_pretty(&file)
        .map_err(|e| SiameseError::Runtime(format!("cannot serialise the config: {e}")))?;
    let mut store = SafetensorsStore::from_bytes(None);
    network
        .save_into(&mut store)
        .map_err(|e| SiameseError::Runtime(format!("cannot serialise the weights: {e}")))?;
    let weights = store
        .get_bytes()
        .map_err(|e| SiameseError::Runtime(format!("cannot serialise the weights: {e}")))?;
    let mut all = vec![(CONFIG_FILE, json), (WEIGHTS_FILE, weights)];
    all.extend(files.iter().cloned());
    write_dir_atomic(dir, &all)
}

/// Reads only the config (and extra entries) of the model directory `dir`.
pub fn load_config(dir: &Path) -> Result<(ModelConfig, Extra)> {
    let path = dir.join(CONFIG_FILE);
    let text = fs::read_to_string(&path).map_err(|e| SiameseError::io(&path, e))?;
    let file: ConfigFile = serde_json::from_str(&text)
        .map_err(|e| SiameseError::format(&path, format!("not a valid model config: {e}")))?;
    if file.format != FORMAT {
        return Err(SiameseError::format(
            &path,
            format!("format is `{}`, expected `{FORMAT}`", file.format),
        ));
    }
    if file.version > VERSION {
        return Err(SiameseError::format(
            &path,
            format!(
                "format version {} is newer than this build understands ({VERSION})",
                file.version
            ),
        ));
    }
    file.model
        .validate()
        .map_err(|e| SiameseError::format(&path, e.to_string()))?;
    Ok((file.model, file.extra))
}

/// Loads the model directory `dir` onto `device`.
pub fn load_model(dir: &Path, device: &Device) -> Result<(ModelConfig, SiameseNetwork, Extra)> {
    let (config, extra) = load_config(dir)?;
    let path = dir.join(WEIGHTS_FILE);
    let bytes = fs::read(&path).map_err(|e| SiameseError::io(&path, e))?;
    let mut network = config.network.init(device, config.seed)?;
    let mut store = SafetensorsStore::from_bytes(Some(bytes));
    let applied = network.load_from(&mut store).map_err(|e| {
        SiameseError::format(
            &path,
            format!("cannot load these weights into the model that config.json describes: {e}"),
        )
    })?;
    if !applied.errors.is_empty() {
        let list: Vec<String> = applied.errors.iter().map(|e| format!("{e:?}")).collect();
        return Err(SiameseError::format(
            &path,
            format!(
                "weights do not fit the model in config.json: {}",
                list.join("; ")
            ),
        ));
    }
    if !applied.missing.is_empty() {
        let list: Vec<&str> = applied.missing.iter().map(|(p, _)| p.as_str()).collect();
        return Err(SiameseError::format(
            &path,
            format!("weights are missing tensors: {}", list.join(", ")),
        ));
    }
    if !applied.unused.is_empty() {
        return Err(SiameseError::format(
            &path,
            format!(
                "weights hold tensors the model does not have: {}",
                applied.unused.join(", ")
            ),
        ));
    }
    Ok((config, network, extra))
}
