//! The multi-task model: tokenizer, shared encoder, heads, losses, and saved versions.

pub mod classifier;
pub mod encoded;
pub mod encoder;
pub mod losses;
pub mod manifest;
pub mod network;
pub mod ngram;
pub mod prepared;
pub mod sharing;
pub mod tfidf;
pub mod tokenizer;
pub mod vectors;
pub mod version_dir;

pub use classifier::{Classifier, Prediction, Scores, TaskPrediction};
pub use manifest::ModelManifest;
pub use prepared::{PreparedBatch, TextPreparer};
pub use version_dir::{list_versions, load_version, read_manifest, ModelError};

/// Parses `cpu`, `cuda`, `cuda:N` or `auto` (CUDA when available, else CPU).
pub fn parse_device(name: &str) -> Result<tch::Device, String> {
    match name {
        "cpu" => Ok(tch::Device::Cpu),
        "auto" => Ok(tch::Device::cuda_if_available()),
        "cuda" | "gpu" => {
            if tch::Cuda::is_available() {
                Ok(tch::Device::Cuda(0))
            } else {
                Err("--device cuda: no CUDA device is available to libtorch".into())
            }
        }
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) if tch::Cuda::is_available() && (n as i64) < tch::Cuda::device_count() => {
                Ok(tch::Device::Cuda(n))
            }
            Some(Ok(n)) => Err(format!("--device cuda:{n}: no such CUDA device")),
            _ => Err(format!(
                "unknown device '{other}' (cpu, cuda, cuda:N or auto)"
            )),
        },
    }
}
