//! Prometheus metrics, kept in memory and written in the text exposition format by hand
//! (a few counters and histograms do not need a metrics crate).
//!
//! Kept hand-written after the review asked about `metrics-exporter-prometheus` or
//! `prometheus-client`: neither bounds label values by itself (the caller chooses them either
//! way, and the router folds client-chosen methods and paths into fixed labels before they
//! get here), the format is pinned by tests, and moving every metric to a crate is a larger
//! change than the fix. Every label set here is bounded: methods and routes by the router,
//! statuses by the handlers, tasks and labels by the served models.

use crate::store::training_runs::RunState;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// A cumulative histogram with fixed buckets.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c;
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braced = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braced} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braced} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// (method, route, status) -> request latency.
    http: BTreeMap<(String, String, u16), Histogram>,
    batch_size: Option<Histogram>,
    inference_seconds: Option<Histogram>,
    db_write_seconds: Option<Histogram>,
    /// (task, label) -> predictions committed.
    predictions: BTreeMap<(String, String), u64>,
    active_version: String,
    /// Times the served version changed (promotion, rollback, following another replica).
    model_swaps: u64,
    /// Texts the model read, by where they were prepared (see [`PreparedBy`]).
    prepared: BTreeMap<PreparedBy, u64>,
    /// Training runs this process ran, by how they ended.
    training_runs: BTreeMap<RunState, u64>,
}

/// Where a batch's texts were tokenized and made into TF-IDF rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PreparedBy {
    /// By the request, before it was queued (requests of several texts).
    Request,
    /// By the replica that scored them (single texts, and texts that another version
    /// prepared before a swap).
    Replica,
}

impl PreparedBy {
    fn as_str(self) -> &'static str {
        match self {
            PreparedBy::Request => "request",
            PreparedBy::Replica => "replica",
        }
    }
}

/// The service's metrics; cheap to share (`Arc`) and to update from any thread.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    /// Requests admitted and waiting for a batch (shared with the pipeline).
    pub queue_depth: Arc<AtomicUsize>,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn new(queue_depth: Arc<AtomicUsize>) -> Metrics {
        Metrics {
            inner: Mutex::default(),
            queue_depth,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.lock()
            .http
            .entry((method.to_string(), route.to_string(), status))
            .or_insert_with(|| Histogram::new(LATENCY_BUCKETS))
            .observe(seconds);
    }

    /// One batch went through the model: its size, the time inference took, and who
    /// prepared its texts (`None` when preparing them failed).
    pub fn observe_batch(
        &self,
        texts: usize,
        inference_seconds: f64,
        prepared_by: Option<PreparedBy>,
    ) {
        let mut g = self.lock();
        g.batch_size
            .get_or_insert_with(|| Histogram::new(BATCH_BUCKETS))
            .observe(texts as f64);
        g.inference_seconds
            .get_or_insert_with(|| Histogram::new(LATENCY_BUCKETS))
            .observe(inference_seconds);
        if let Some(by) = prepared_by {
            *g.prepared.entry(by).or_default() += texts as u64;
        }
    }

    /// One batch was committed: how long the write took and which labels it predicted.
    pub fn observe_commit<'a>(
        &self,
        seconds: f64,
        labels: impl Iterator<Item = (&'a str, &'a str)>,
    ) {
        let mut g = self.lock();
        g.db_write_seconds
            .get_or_insert_with(|| Histogram::new(LATENCY_BUCKETS))
            .observe(seconds);
        for (task, label) in labels {
            match g
                .predictions
                .get_mut(&(task.to_string(), label.to_string()))
            {
                Some(n) => *n += 1,
                None => {
                    g.predictions
                        .insert((task.to_string(), label.to_string()), 1);
                }
            }
        }
    }

    pub fn set_active_version(&self, version: &str) {
        let mut g = self.lock();
        if !g.active_version.is_empty() && g.active_version != version {
            g.model_swaps += 1;
        }
        g.active_version = version.to_string();
    }

    /// Counts a training run this process ran, by its end state.
    pub fn observe_training_run(&self, end_state: RunState) {
        *self.lock().training_runs.entry(end_state).or_default() += 1;
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let g = self.lock();
        let mut out = String::with_capacity(8192);
        out.push_str(
            "# HELP voc_http_requests_total HTTP requests answered, by route and status.\n",
        );
        out.push_str("# TYPE voc_http_requests_total counter\n");
        for ((method, route, status), h) in &g.http {
            let _ = writeln!(
                out,
                "voc_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {}",
                escape(route),
                h.count
            );
        }
        out.push_str("# HELP voc_http_request_duration_seconds Time to answer an HTTP request.\n");
        out.push_str("# TYPE voc_http_request_duration_seconds histogram\n");
        for ((method, route, status), h) in &g.http {
            let labels = format!(
                "method=\"{method}\",route=\"{}\",status=\"{status}\"",
                escape(route)
            );
            h.write(&mut out, "voc_http_request_duration_seconds", &labels);
        }
        let empty_batch = Histogram::new(BATCH_BUCKETS);
        let empty_latency = Histogram::new(LATENCY_BUCKETS);
        out.push_str("# HELP voc_batch_size Texts per inference batch.\n");
        out.push_str("# TYPE voc_batch_size histogram\n");
        g.batch_size
            .as_ref()
            .unwrap_or(&empty_batch)
            .write(&mut out, "voc_batch_size", "");
        out.push_str("# HELP voc_inference_seconds Model time per batch.\n");
        out.push_str("# TYPE voc_inference_seconds histogram\n");
        g.inference_seconds
            .as_ref()
            .unwrap_or(&empty_latency)
            .write(&mut out, "voc_inference_seconds", "");
        out.push_str(
            "# HELP voc_db_write_seconds Time to commit one batch's transcripts and predictions.\n",
        );
        out.push_str("# TYPE voc_db_write_seconds histogram\n");
        g.db_write_seconds.as_ref().unwrap_or(&empty_latency).write(
            &mut out,
            "voc_db_write_seconds",
            "",
        );
        out.push_str("# HELP voc_queue_depth Requests waiting for an inference batch.\n");
        out.push_str("# TYPE voc_queue_depth gauge\n");
        let _ = writeln!(
            out,
            "voc_queue_depth {}",
            self.queue_depth.load(Ordering::Relaxed)
        );
        out.push_str("# HELP voc_model_info The model version being served (value 1).\n");
        out.push_str("# TYPE voc_model_info gauge\n");
        let _ = writeln!(
            out,
            "voc_model_info{{version=\"{}\"}} 1",
            escape(&g.active_version)
        );
        out.push_str("# HELP voc_model_swaps_total Times the served model version changed.\n");
        out.push_str("# TYPE voc_model_swaps_total counter\n");
        let _ = writeln!(out, "voc_model_swaps_total {}", g.model_swaps);
        out.push_str(
            "# HELP voc_texts_prepared_total Texts tokenized for the model, by where: the request before queueing, or the replica.\n",
        );
        out.push_str("# TYPE voc_texts_prepared_total counter\n");
        for by in [PreparedBy::Request, PreparedBy::Replica] {
            let n = g.prepared.get(&by).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "voc_texts_prepared_total{{by=\"{}\"}} {n}",
                by.as_str()
            );
        }
        out.push_str(
            "# HELP voc_training_runs_total Training runs this process ran, by end state.\n",
        );
        out.push_str("# TYPE voc_training_runs_total counter\n");
        for state in RunState::ENDS {
            let n = g.training_runs.get(&state).copied().unwrap_or(0);
            let name = state.as_str();
            let _ = writeln!(out, "voc_training_runs_total{{state=\"{name}\"}} {n}");
        }
        out.push_str("# HELP voc_predictions_total Committed predictions, by task and label.\n");
        out.push_str("# TYPE voc_predictions_total counter\n");
        for ((task, label), n) in &g.predictions {
            let _ = writeln!(
                out,
                "voc_predictions_total{{task=\"{}\",label=\"{}\"}} {n}",
                escape(task),
                escape(label)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_count_every_observation() {
        let m = Metrics::default();
        m.observe_request("POST", "/classify", 200, 0.003);
        m.observe_request("POST", "/classify", 200, 0.2);
        let text = m.render();
        assert!(text.contains(
            "voc_http_request_duration_seconds_bucket{method=\"POST\",route=\"/classify\",status=\"200\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "voc_http_request_duration_seconds_bucket{method=\"POST\",route=\"/classify\",status=\"200\",le=\"+Inf\"} 2"
        ));
        assert!(text.contains(
            "voc_http_requests_total{method=\"POST\",route=\"/classify\",status=\"200\"} 2"
        ));
    }

    #[test]
    fn label_values_with_quotes_are_escaped() {
        let m = Metrics::default();
        m.observe_commit(0.01, [("reason", "say \"hi\"")].into_iter());
        assert!(m
            .render()
            .contains("voc_predictions_total{task=\"reason\",label=\"say \\\"hi\\\"\"} 1"));
    }
}
