//! `voc pretrain`: unlabeled text in, a pretrained encoder version out — a tokenizer
//! learned from that text, an embedding matrix learned by skip-gram and, for an LSTM
//! encoder, the BiLSTM trained as a forward and backward language model over those
//! embeddings ([`super::lm`]), saved in the same atomic, checksummed folder layout as a
//! classifier (kind `encoder`).

use super::init::pretrain_embedding;
use super::lm::{pretrain_lstm, LmInput, LmReport};
use super::skipgram::SkipGramReport;
use super::TrainError;
use crate::config::TrainConfig;
use crate::model::encoder::BiLstm;
use crate::model::manifest::{ModelManifest, TrainingData, VersionKind, MANIFEST_FORMAT};
use crate::model::tokenizer::TextTokenizer;
use crate::model::version_dir::{new_version_name, save_version, NewVersion};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tch::nn;

/// What to pretrain on.
pub struct PretrainRequest<'a> {
    pub texts: &'a [String],
    /// Where the texts came from (file names, or the database), for `model.json`.
    pub source: String,
    pub config: TrainConfig,
    pub device: tch::Device,
    pub store: PathBuf,
}

/// What a pretraining run produced.
pub struct PretrainSummary {
    pub version_dir: PathBuf,
    pub tokenizer: TextTokenizer,
    pub embedding: tch::Tensor,
    pub skipgram: SkipGramReport,
    /// The language-model pass, for an LSTM encoder with `pretrain.lm_epochs` above 0.
    pub language_model: Option<LmReport>,
}

/// Learns the tokenizer and the embeddings from `request.texts` and saves an encoder version.
pub fn pretrain(request: PretrainRequest) -> Result<PretrainSummary, TrainError> {
    let config = &request.config;
    config.validate()?;
    let texts: Vec<&str> = request
        .texts
        .iter()
        .map(String::as_str)
        .filter(|t| !t.trim().is_empty())
        .collect();
    if texts.is_empty() {
        return Err(TrainError::Data("no text to pretrain on".into()));
    }
    tch::set_num_threads(super::trainer::training_threads(config.training.threads) as i32);
    let tokenizer = TextTokenizer::train(
        texts.iter().copied(),
        config.model.vocab_size,
        config.model.max_len,
    )?;
    let rows = texts
        .iter()
        .map(|t| tokenizer.encode(t))
        .collect::<Result<Vec<_>, _>>()?;
    let vs = nn::VarStore::new(request.device);
    let embedding = nn::embedding(
        vs.root() / "encoder" / "embedding",
        tokenizer.vocab_size() as i64,
        config.model.embedding_dim,
        Default::default(),
    );
    let skipgram = pretrain_embedding(
        &vs,
        &rows,
        &tokenizer,
        &config.pretrain,
        config.training.seed,
        request.device,
    )?;
    let language_model = pretrain_language_model(&vs, &embedding, &rows, &tokenizer, &request)?;
    let version = new_version_name();
    let mut hasher = Sha256::new();
    for t in &texts {
        hasher.update(t.as_bytes());
        hasher.update([0u8]);
    }
    let manifest = ModelManifest {
        format: MANIFEST_FORMAT,
        kind: VersionKind::Encoder,
        version: version.clone(),
        created_at: chrono::Utc::now().to_rfc3339(),
        tasks: Vec::new(),
        target_task: String::new(),
        config: config.clone(),
        vocab_size: tokenizer.vocab_size() as i64,
        training_data: TrainingData {
            source: request.source.clone(),
            fingerprint: hex::encode(hasher.finalize()),
            rows: texts.len(),
            labeled: BTreeMap::new(),
            unlabeled: texts.len(),
        },
        parent_version: None,
        source_commit: option_env!("VOC_SOURCE_COMMIT").map(str::to_string),
        libtorch: "2.11.0".into(),
        files: BTreeMap::new(),
    };
    let metrics = serde_json::json!({
        "version": version,
        "skipgram": skipgram,
        "language_model": language_model,
    });
    let version_dir = save_version(
        &request.store,
        NewVersion {
            manifest,
            vs: &vs,
            tokenizer: &tokenizer,
            metrics: &metrics,
            extra_tensors: Vec::new(),
        },
    )?;
    Ok(PretrainSummary {
        version_dir,
        tokenizer,
        embedding: tch::no_grad(|| embedding.ws.to_device(tch::Device::Cpu)),
        skipgram,
        language_model,
    })
}

/// For an encoder with an LSTM, adds the BiLSTM to `vs` (as `encoder.lstm_forward.*` and
/// `encoder.lstm_backward.*`, the names a classifier's encoder has) and trains it, with the
/// embedding, as a language model over `rows`.
fn pretrain_language_model(
    vs: &nn::VarStore,
    embedding: &nn::Embedding,
    rows: &[Vec<i64>],
    tokenizer: &TextTokenizer,
    request: &PretrainRequest,
) -> Result<Option<LmReport>, TrainError> {
    let config = &request.config;
    if !config.model.encoder.has_lstm() || config.pretrain.lm_epochs == 0 {
        return Ok(None);
    }
    tch::manual_seed(config.training.seed as i64);
    let lstm = BiLstm::new(
        &(vs.root() / "encoder"),
        config.model.embedding_dim,
        config.model.lstm_hidden,
    );
    let report = pretrain_lstm(
        vs,
        embedding,
        &lstm,
        LmInput {
            rows,
            vocab_size: tokenizer.vocab_size() as i64,
            special: &tokenizer.special_ids(),
            hidden: config.model.lstm_hidden,
            dropout: config.model.dropout,
            config: &config.pretrain,
            grad_clip: config.training.grad_clip,
            seed: config.training.seed,
            device: request.device,
        },
        |epoch, epochs, loss| {
            tracing::info!(epoch, epochs, loss, "language-model pretraining");
        },
    )?;
    Ok(Some(report))
}
