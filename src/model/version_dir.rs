//! One model version on disk: `model_store/<version>/` with `weights.safetensors`,
//! `tokenizer.json`, `model.json` and `metrics.json`.
//!
//! A version is written into a hidden temporary folder and renamed into place, so a crash
//! never leaves half a version; loading checks every file against the checksums in
//! `model.json` and refuses a missing, corrupted or incompatible one with a clear message.

use super::manifest::{ModelManifest, VersionKind, MANIFEST_FORMAT};
use super::network::MultiTaskNet;
use super::tfidf::{self, TfidfModel};
use super::tokenizer::TextTokenizer;
use crate::config::{NgramConfig, TfidfConfig};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::nn;

pub const WEIGHTS_FILE: &str = "weights.safetensors";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const MANIFEST_FILE: &str = "model.json";
pub const METRICS_FILE: &str = "metrics.json";

/// Why a model version could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model version {dir}: {file} is missing")]
    Missing { dir: String, file: String },
    #[error("model version {dir}: {file} is corrupted ({reason})")]
    Corrupted {
        dir: String,
        file: String,
        reason: String,
    },
    #[error("model version {dir} is incompatible: {reason}")]
    Incompatible { dir: String, reason: String },
    #[error("model store {dir}: {reason}")]
    Store { dir: String, reason: String },
    #[error("model input: {0}")]
    Input(String),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error(transparent)]
    Tokenizer(#[from] super::tokenizer::TokenizerError),
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    Ok(hex::encode(Sha256::digest(std::fs::read(path)?)))
}

/// What a new version folder is made of.
pub struct NewVersion<'a> {
    pub manifest: ModelManifest,
    pub vs: &'a nn::VarStore,
    pub tokenizer: &'a TextTokenizer,
    pub metrics: &'a serde_json::Value,
    /// Tensors saved beside the network's variables (the TF-IDF companion's, whose shapes
    /// depend on the training data).
    pub extra_tensors: Vec<(String, tch::Tensor)>,
}

/// A fresh, sortable version name: UTC time plus a random suffix.
pub fn new_version_name() -> String {
    let suffix: u16 = rand::random();
    format!(
        "{}-{suffix:04x}",
        chrono::Utc::now().format("v%Y%m%d-%H%M%S")
    )
}

/// Writes `version` under `store` atomically and returns the final folder.
pub fn save_version(store: &Path, mut version: NewVersion) -> Result<PathBuf, ModelError> {
    let store_err = |reason: String| ModelError::Store {
        dir: store.display().to_string(),
        reason,
    };
    std::fs::create_dir_all(store).map_err(|e| store_err(format!("cannot create: {e}")))?;
    let name = version.manifest.version.clone();
    let final_dir = store.join(&name);
    if final_dir.exists() {
        return Err(store_err(format!("version {name} already exists")));
    }
    let tmp = store.join(format!(".tmp-{name}"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| store_err(format!("cannot create: {e}")))?;
    let result = (|| -> Result<(), ModelError> {
        let io = |e: std::io::Error| store_err(format!("cannot write version {name}: {e}"));
        let mut named: Vec<(String, tch::Tensor)> = version.vs.variables().into_iter().collect();
        named.append(&mut version.extra_tensors);
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let tensors: Vec<(String, tch::Tensor)> = named
            .into_iter()
            .map(|(n, t)| (n, t.to_device(tch::Device::Cpu)))
            .collect();
        tch::Tensor::write_safetensors(&tensors, tmp.join(WEIGHTS_FILE))?;
        version.tokenizer.save(&tmp.join(TOKENIZER_FILE))?;
        let metrics = serde_json::to_vec_pretty(version.metrics).expect("metrics serialize");
        std::fs::write(tmp.join(METRICS_FILE), metrics).map_err(io)?;
        let mut files = BTreeMap::new();
        for file in [WEIGHTS_FILE, TOKENIZER_FILE, METRICS_FILE] {
            files.insert(file.to_string(), sha256_file(&tmp.join(file)).map_err(io)?);
        }
        version.manifest.files = files;
        let manifest = serde_json::to_vec_pretty(&version.manifest).expect("manifest serialize");
        std::fs::write(tmp.join(MANIFEST_FILE), manifest).map_err(io)?;
        sync_dir(&tmp);
        std::fs::rename(&tmp, &final_dir).map_err(io)?;
        sync_dir(store);
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result.map(|_| final_dir)
}

fn sync_dir(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if let Ok(f) = std::fs::File::open(entry.path()) {
                let _ = f.sync_all();
            }
        }
    }
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

/// A version read back from disk, checked, with its network built and weights loaded.
pub struct LoadedVersion {
    pub dir: PathBuf,
    pub manifest: ModelManifest,
    pub tokenizer: TextTokenizer,
    pub vs: nn::VarStore,
    pub net: MultiTaskNet,
    /// The TF-IDF companion averaged with the network, when the version has one (shared by
    /// the replicas of one version).
    pub tfidf: Option<std::sync::Arc<TfidfModel>>,
    pub metrics: serde_json::Value,
}

/// Reads and checks `model.json` only (cheap: for listings).
pub fn read_manifest(dir: &Path) -> Result<ModelManifest, ModelError> {
    let d = dir.display().to_string();
    let path = dir.join(MANIFEST_FILE);
    if !dir.is_dir() {
        return Err(ModelError::Store {
            dir: d,
            reason: "no such model version folder".into(),
        });
    }
    let bytes = std::fs::read(&path).map_err(|_| ModelError::Missing {
        dir: d.clone(),
        file: MANIFEST_FILE.into(),
    })?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| ModelError::Corrupted {
            dir: d.clone(),
            file: MANIFEST_FILE.into(),
            reason: e.to_string(),
        })?;
    let format = value.get("format").and_then(|f| f.as_u64());
    if format != Some(MANIFEST_FORMAT as u64) {
        return Err(ModelError::Incompatible {
            dir: d,
            reason: format!("manifest format {format:?}, this build reads {MANIFEST_FORMAT}"),
        });
    }
    serde_json::from_value(with_pre_branch_defaults(value)).map_err(|e| ModelError::Incompatible {
        dir: d,
        reason: format!("{MANIFEST_FILE}: {e}"),
    })
}

/// A version saved before the n-gram branch or the TF-IDF companion existed has no entry
/// for it, and was trained without it: read such a missing entry as switched off (a config
/// file that leaves one out gets the default instead).
fn with_pre_branch_defaults(mut manifest: serde_json::Value) -> serde_json::Value {
    if let Some(model) = manifest
        .pointer_mut("/config/model")
        .and_then(|m| m.as_object_mut())
    {
        let off = [
            ("ngrams", serde_json::to_value(NgramConfig::off())),
            ("tfidf", serde_json::to_value(TfidfConfig::off())),
        ];
        for (key, value) in off {
            if let (false, Ok(value)) = (model.contains_key(key), value) {
                model.insert(key.into(), value);
            }
        }
    }
    manifest
}

/// Checks every file of `dir` against the checksums in its manifest and loads its tokenizer.
fn check_files(dir: &Path, manifest: &ModelManifest) -> Result<TextTokenizer, ModelError> {
    let d = dir.display().to_string();
    for file in [WEIGHTS_FILE, TOKENIZER_FILE, METRICS_FILE] {
        let path = dir.join(file);
        if !path.is_file() {
            return Err(ModelError::Missing {
                dir: d.clone(),
                file: file.into(),
            });
        }
        let expected = manifest
            .files
            .get(file)
            .ok_or_else(|| ModelError::Incompatible {
                dir: d.clone(),
                reason: format!("{MANIFEST_FILE} has no checksum for {file}"),
            })?;
        let actual = sha256_file(&path).map_err(|e| ModelError::Corrupted {
            dir: d.clone(),
            file: file.into(),
            reason: e.to_string(),
        })?;
        if &actual != expected {
            return Err(ModelError::Corrupted {
                dir: d.clone(),
                file: file.into(),
                reason: "checksum does not match model.json".into(),
            });
        }
    }
    let tokenizer = TextTokenizer::load(&dir.join(TOKENIZER_FILE), manifest.config.model.max_len)?;
    if tokenizer.vocab_size() as i64 != manifest.vocab_size {
        return Err(ModelError::Incompatible {
            dir: d,
            reason: format!(
                "tokenizer has {} tokens, model.json says {}",
                tokenizer.vocab_size(),
                manifest.vocab_size
            ),
        });
    }
    Ok(tokenizer)
}

/// A version's tokenizer and raw weights, to start a new network from (any kind).
pub struct StartingWeights {
    pub manifest: ModelManifest,
    pub tokenizer: TextTokenizer,
    pub tensors: BTreeMap<String, tch::Tensor>,
}

/// Reads a classifier or encoder version, checked, without building a network.
pub fn load_starting_weights(dir: &Path) -> Result<StartingWeights, ModelError> {
    let manifest = read_manifest(dir)?;
    let tokenizer = check_files(dir, &manifest)?;
    let tensors = tch::Tensor::read_safetensors(dir.join(WEIGHTS_FILE))
        .map_err(|e| ModelError::Corrupted {
            dir: dir.display().to_string(),
            file: WEIGHTS_FILE.into(),
            reason: e.to_string(),
        })?
        .into_iter()
        .collect();
    Ok(StartingWeights {
        manifest,
        tokenizer,
        tensors,
    })
}

/// Loads a version onto `device`, checking every file.
pub fn load_version(dir: &Path, device: tch::Device) -> Result<LoadedVersion, ModelError> {
    let d = dir.display().to_string();
    let manifest = read_manifest(dir)?;
    if manifest.kind != VersionKind::Classifier {
        return Err(ModelError::Incompatible {
            dir: d,
            reason: "it is a pretrained encoder, not a classifier; train from it with \
                     `voc train --init-from`"
                .into(),
        });
    }
    let tokenizer = check_files(dir, &manifest)?;
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(METRICS_FILE)).map_err(|e| {
            ModelError::Corrupted {
                dir: d.clone(),
                file: METRICS_FILE.into(),
                reason: e.to_string(),
            }
        })?)
        .map_err(|e| ModelError::Corrupted {
            dir: d.clone(),
            file: METRICS_FILE.into(),
            reason: e.to_string(),
        })?;
    let mut vs = nn::VarStore::new(device);
    let net = network_of(&vs, &manifest);
    let mut saved: BTreeMap<String, tch::Tensor> =
        tch::Tensor::read_safetensors(dir.join(WEIGHTS_FILE))
            .map_err(|e| ModelError::Corrupted {
                dir: d.clone(),
                file: WEIGHTS_FILE.into(),
                reason: e.to_string(),
            })?
            .into_iter()
            .collect();
    let companion: BTreeMap<String, tch::Tensor> = {
        let names: Vec<String> = saved
            .keys()
            .filter(|k| k.starts_with(tfidf::PREFIX))
            .cloned()
            .collect();
        names
            .into_iter()
            .filter_map(|k| saved.remove_entry(&k))
            .collect()
    };
    let incompatible = |reason: String| ModelError::Incompatible {
        dir: d.clone(),
        reason: format!("{WEIGHTS_FILE}: {reason}"),
    };
    let tfidf = TfidfModel::from_tensors(&companion, &manifest.tasks, &manifest.config.model.tfidf)
        .map_err(incompatible)?;
    load_weights(&mut vs, &saved).map_err(|reason| ModelError::Incompatible { dir: d, reason })?;
    vs.freeze();
    Ok(LoadedVersion {
        dir: dir.to_path_buf(),
        manifest,
        tokenizer,
        vs,
        net,
        tfidf: tfidf.map(std::sync::Arc::new),
        metrics,
    })
}

/// The network `manifest` describes, its variables under `vs` (initialised, not loaded).
fn network_of(vs: &nn::VarStore, manifest: &ModelManifest) -> MultiTaskNet {
    MultiTaskNet::new(
        &vs.root(),
        &manifest.config.model,
        manifest.vocab_size,
        &manifest.tasks,
        &manifest.target_task,
    )
}

impl LoadedVersion {
    /// Another copy of this version whose tensors share this one's memory: what each extra
    /// inference replica gets, so that N replicas hold the weights (and the TF-IDF
    /// companion) once and read them from the same cache lines. Only reading is safe: a
    /// loaded version is frozen and scored in inference mode.
    pub fn replicate(&self) -> LoadedVersion {
        let mut vs = nn::VarStore::new(self.vs.device());
        let net = network_of(&vs, &self.manifest);
        let source = self.vs.variables();
        for (name, mut var) in vs.variables() {
            tch::no_grad(|| var.set_data(&source[&name]));
        }
        vs.freeze();
        LoadedVersion {
            dir: self.dir.clone(),
            manifest: self.manifest.clone(),
            tokenizer: self.tokenizer.clone(),
            vs,
            net,
            tfidf: self.tfidf.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// Copies every tensor of a weights file into the same-named variable of `vs`,
/// requiring the names and shapes to match exactly.
fn load_weights(
    vs: &mut nn::VarStore,
    saved: &BTreeMap<String, tch::Tensor>,
) -> Result<(), String> {
    let variables = vs.variables();
    for (name, var) in &variables {
        let src = saved
            .get(name)
            .ok_or_else(|| format!("{WEIGHTS_FILE} has no tensor '{name}'"))?;
        if src.size() != var.size() {
            return Err(format!(
                "tensor '{name}' has shape {:?}, the architecture needs {:?}",
                src.size(),
                var.size()
            ));
        }
        tch::no_grad(|| var.shallow_clone().copy_(src));
    }
    if let Some(extra) = saved.keys().find(|k| !variables.contains_key(*k)) {
        return Err(format!("{WEIGHTS_FILE} has an unexpected tensor '{extra}'"));
    }
    Ok(())
}

/// Classifier version folders under `store`, oldest first (names sort by creation time).
/// Pretrained encoders stored beside them are left out: they cannot be served.
pub fn list_versions(store: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(store)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.join(MANIFEST_FILE).is_file())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.'))
        })
        .filter(|p| read_manifest(p).map_or(true, |m| m.kind == VersionKind::Classifier))
        .collect();
    dirs.sort();
    dirs
}

#[cfg(test)]
mod tests {
    use super::with_pre_branch_defaults;
    use crate::config::ModelConfig;
    use serde_json::json;

    fn model_config(manifest: serde_json::Value) -> ModelConfig {
        serde_json::from_value(with_pre_branch_defaults(manifest)["config"]["model"].clone())
            .unwrap()
    }

    #[test]
    fn a_version_saved_before_the_ngram_branch_and_the_companion_reads_with_both_off() {
        let old = model_config(json!({"config": {"model": {"dropout": 0.3}}}));
        assert!(!old.ngrams.enabled && !old.tfidf.enabled, "{old:?}");
        let saved = serde_json::to_value(ModelConfig::default()).unwrap();
        let new = model_config(json!({"config": {"model": saved}}));
        assert_eq!(new, ModelConfig::default());
        assert!(new.ngrams.enabled && new.tfidf.enabled);
    }
}
