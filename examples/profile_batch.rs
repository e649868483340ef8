//! Where one serving batch spends its time (issue 12, item 2): redaction, tokenization, the
//! padded id tensors, the network as `Classifier::scores` runs it, the TF-IDF companion, the
//! rest of `scores` (the stages alone keep their own data in the caches; run one after another
//! they evict each other's), the answer structs, the answers as JSON, and the database write (`insert_classified`, one statement per batch, as the server's batch
//! writer does). Each stage runs on its own over the same batches, one intra-op thread, as one
//! inference replica of `voc serve` does. It also splits the forward pass into the trunk
//! (embeddings, CNN/LSTM, n-gram branch) and the linear layers that read it (association,
//! heads), the only layers dynamic int8 quantization would touch.
//!
//!     bash bench/profile_batch.sh                     # builds a model or takes VOC_PROFILE_MODEL
//!     cargo run --example profile_batch -- --model DIR --data test.jsonl [--batch 42]
//!         [--batches 200] [--database-url URL]
use std::time::Instant;
use tch::{Kind, Tensor};
use voc::model::{classifier::probabilities, encoder::TokenBatch, Classifier};
use voc::pipeline::review_guesses;
use voc::redact::Redactor;
use voc::store::transcripts::{insert_classified, ClassifiedRow};

struct Args {
    model: std::path::PathBuf,
    data: std::path::PathBuf,
    batch: usize,
    batches: usize,
    database_url: Option<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        model: Default::default(),
        data: Default::default(),
        batch: 42,
        batches: 200,
        database_url: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--model" => args.model = value()?.into(),
            "--data" => args.data = value()?.into(),
            "--batch" => args.batch = value()?.parse()?,
            "--batches" => args.batches = value()?.parse()?,
            "--database-url" => args.database_url = Some(value()?),
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    anyhow::ensure!(
        args.batch > 0 && args.batches > 0,
        "--batch and --batches must be positive"
    );
    Ok(args)
}

/// The texts of a JSONL file, cycled into `batches` batches of `batch`.
fn batches(args: &Args) -> anyhow::Result<Vec<Vec<String>>> {
    let texts: Vec<String> = std::fs::read_to_string(&args.data)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            Ok(serde_json::from_str::<serde_json::Value>(l)?["text"]
                .as_str()
                .unwrap_or("")
                .to_string())
        })
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(!texts.is_empty(), "{} holds no texts", args.data.display());
    let mut all = texts.iter().cycle();
    Ok((0..args.batches)
        .map(|_| {
            (0..args.batch)
                .map(|_| all.next().unwrap().clone())
                .collect()
        })
        .collect())
}

fn refs(batch: &[String]) -> Vec<&str> {
    batch.iter().map(String::as_str).collect()
}

/// Runs `f` on every batch and returns the seconds it took in all.
fn timed<T>(batches: &[T], mut f: impl FnMut(&T)) -> f64 {
    let started = Instant::now();
    for b in batches {
        f(b);
    }
    started.elapsed().as_secs_f64()
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    tch::set_num_threads(1);
    let classifier = Classifier::load(&args.model, tch::Device::Cpu)?;
    let batches = batches(&args)?;
    let mut stages: Vec<(&str, f64)> = Vec::new();

    // Warm-up: libtorch's first calls allocate and pick kernels.
    for b in batches.iter().take(5) {
        classifier.predict(&refs(b))?;
    }
    let redactor = Redactor::shared();
    stages.push((
        "redaction",
        timed(&batches, |b| {
            for t in b {
                std::hint::black_box(redactor.redact(t));
            }
        }),
    ));
    let encoded: Vec<Vec<Vec<i64>>> = batches
        .iter()
        .map(|b| classifier.encode(&refs(b)))
        .collect::<Result<_, _>>()?;
    stages.push((
        "tokenization",
        timed(&batches, |b| {
            std::hint::black_box(classifier.encode(&refs(b)).unwrap());
        }),
    ));
    let tensors: Vec<TokenBatch> = encoded
        .iter()
        .map(|rows| {
            TokenBatch::new(
                &rows.iter().map(Vec::as_slice).collect::<Vec<_>>(),
                tch::Device::Cpu,
            )
        })
        .collect();
    stages.push((
        "id tensors",
        timed(&encoded, |rows| {
            let rows: Vec<&[i64]> = rows.iter().map(Vec::as_slice).collect();
            std::hint::black_box(TokenBatch::new(&rows, tch::Device::Cpu));
        }),
    ));
    let net = classifier.net();
    // The split is a difference of two close times: each is the fastest of five rounds,
    // taken in turn, so that drift in the machine's speed does not land in the difference.
    let (mut trunk, mut whole) = (f64::MAX, f64::MAX);
    tch::no_grad(|| {
        for _ in 0..5 {
            trunk = trunk.min(timed(&tensors, |t| {
                std::hint::black_box(net.features_t(t, false));
            }));
            whole = whole.min(timed(&tensors, |t| {
                let out = net.forward_t(t, false);
                let probs: Vec<Tensor> = out
                    .logits
                    .iter()
                    .map(|l| l.softmax(-1, Kind::Float))
                    .collect();
                std::hint::black_box(probs);
            }));
        }
    });
    stages.push((
        "network, as served (length-sorted chunks)",
        tch::no_grad(|| {
            timed(&encoded, |rows| {
                std::hint::black_box(probabilities(net, rows, tch::Device::Cpu));
            })
        }),
    ));
    if let Some(companion) = classifier.tfidf() {
        stages.push((
            "TF-IDF companion",
            timed(&batches, |b| {
                std::hint::black_box(companion.probabilities(&refs(b)));
            }),
        ));
    }
    let scores = timed(&batches, |b| {
        std::hint::black_box(classifier.scores(&refs(b)).unwrap());
    });
    // What `scores` runs of the stages above (the network stage builds its own id tensors).
    let parts: f64 = stages
        .iter()
        .filter(|s| !matches!(s.0, "redaction" | "id tensors"))
        .map(|s| s.1)
        .sum();
    stages.push((
        "the rest of Classifier::scores (mixing, copying out, caches)",
        (scores - parts).max(0.0),
    ));
    let mut scored = batches
        .iter()
        .map(|b| classifier.scores(&refs(b)))
        .collect::<Result<Vec<_>, _>>()?;
    let started = Instant::now();
    let predictions: Vec<_> = scored.drain(..).map(|s| s.into_predictions()).collect();
    stages.push((
        "answer structs (Scores::into_predictions)",
        started.elapsed().as_secs_f64(),
    ));
    let version = classifier.manifest().version.clone();
    stages.push((
        "answers as JSON",
        timed(&predictions, |ps| {
            for p in ps {
                let answer = serde_json::json!({"model_version": &version, "prediction": p});
                std::hint::black_box(serde_json::to_vec(&answer).unwrap());
                std::hint::black_box(serde_json::to_string(&p.tasks).unwrap());
                std::hint::black_box(review_guesses(p));
            }
        }),
    ));
    if let Some(url) = &args.database_url {
        stages.push((
            "database write",
            database_write(url, &batches, &predictions, &version)?,
        ));
    }

    let texts = (args.batch * args.batches) as f64;
    let total: f64 = stages.iter().map(|s| s.1).sum();
    println!(
        "profile: model {} ({}), {} batches of {} airline texts, 1 intra-op thread",
        version,
        args.model.display(),
        args.batches,
        args.batch
    );
    println!("| stage | ms per batch | us per text | share |");
    println!("|---|---|---|---|");
    for (name, secs) in &stages {
        println!(
            "| {name} | {:.2} | {:.1} | {:.1} % |",
            secs * 1e3 / args.batches as f64,
            secs * 1e6 / texts,
            100.0 * secs / total
        );
    }
    println!(
        "| all stages | {:.2} | {:.1} | 100 % |",
        total * 1e3 / args.batches as f64,
        total * 1e6 / texts
    );
    let per_batch = |secs: f64| secs * 1e3 / args.batches as f64;
    println!(
        "Classifier::scores alone (predict less the answer structs): {:.2} ms per batch",
        per_batch(scores)
    );
    println!(
        "forward pass on one padded tensor per batch: trunk {:.2} ms, linear layers + softmax {:.2} ms ({:.1} % of it)",
        per_batch(trunk),
        per_batch((whole - trunk).max(0.0)),
        100.0 * (whole - trunk).max(0.0) / whole
    );
    Ok(())
}

/// Seconds to store every batch as the server's batch writer does: one `insert_classified`
/// per batch (transcripts, predictions and review rows in one statement).
fn database_write(
    url: &str,
    batches: &[Vec<String>],
    predictions: &[Vec<voc::model::Prediction>],
    version: &str,
) -> anyhow::Result<f64> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let pool = sqlx::PgPool::connect(url).await?;
        voc::store::migrate(&pool).await?;
        voc::store::models::register(
            &pool,
            voc::store::models::NewModelVersion {
                version,
                path: version,
                tasks: serde_json::json!([]),
                metrics: serde_json::json!({}),
            },
        )
        .await?;
        let rows: Vec<Vec<ClassifiedRow>> = batches
            .iter()
            .zip(predictions)
            .map(|(texts, ps)| {
                texts
                    .iter()
                    .zip(ps)
                    .map(|(text, p)| ClassifiedRow {
                        transcript_id: uuid::Uuid::new_v4(),
                        prediction_id: uuid::Uuid::new_v4(),
                        call_id: None,
                        text: text.clone(),
                        metadata: serde_json::json!({}),
                        redaction_version: voc::redact::Policy::Redact.version(),
                        request_digest: None,
                        model_version: version.to_string(),
                        outputs: serde_json::to_string(&p.tasks).unwrap_or_default(),
                        latency_ms: 1.0,
                        review: review_guesses(p),
                    })
                    .collect()
            })
            .collect();
        let started = Instant::now();
        for batch in &rows {
            insert_classified(&pool, batch).await?;
        }
        Ok(started.elapsed().as_secs_f64())
    })
}
