//! The frozen evaluation set: a fixed share of labeled transcripts that no fine-tuning run
//! ever trains on, chosen by their content. Each transcript's bucket (0–9999) is a hash of
//! its text with whitespace runs folded, computed by Postgres once at insert (migration
//! `0006_eval_by_content.sql`) and by [`eval_bucket`] for files; a transcript is in the set
//! when its bucket is below `share × 10000`. The same text is therefore on the same side in
//! every process, for the life of the database, whether it came through `/classify`,
//! `voc import` or a training file.

use sha2::{Digest, Sha256};

/// Buckets a share is counted in.
pub const BUCKETS: u32 = 10_000;

/// The bucket of `text`, as Postgres's `voc_eval_bucket`: SHA-256 of the text with every
/// run of ASCII whitespace folded into one space and the ends trimmed; its first 60 bits
/// modulo [`BUCKETS`].
pub fn eval_bucket(text: &str) -> u32 {
    let folded = text
        .split([' ', '\t', '\n', '\r', '\x0c', '\x0b'])
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let digest = Sha256::digest(folded.as_bytes());
    let top = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) >> 4;
    (top % u64::from(BUCKETS)) as u32
}

/// Whether a transcript in `bucket` belongs to the evaluation set holding `share` (0–1).
pub fn in_frozen_eval(bucket: u32, share: f64) -> bool {
    f64::from(bucket) < share.clamp(0.0, 1.0) * f64::from(BUCKETS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_match_the_ones_postgres_computes() {
        // Values returned by `SELECT voc_eval_bucket(...)` on PostgreSQL 15.
        assert_eq!(eval_bucket("Hello world"), 750);
        assert_eq!(eval_bucket("  Hello\t\n world  "), 750);
        assert_eq!(eval_bucket("영화 정말 재밌어요"), 4692);
        assert_eq!(eval_bucket(""), 6353);
    }

    #[test]
    fn membership_is_close_to_the_share_and_nested() {
        let texts: Vec<String> = (0..20_000).map(|i| format!("call number {i}")).collect();
        let inside = texts
            .iter()
            .filter(|t| in_frozen_eval(eval_bucket(t), 0.1))
            .count();
        assert!((1_800..2_200).contains(&inside), "{inside} of 20000");
        for t in &texts[..200] {
            // A larger share keeps every member of a smaller one.
            if in_frozen_eval(eval_bucket(t), 0.1) {
                assert!(in_frozen_eval(eval_bucket(t), 0.2));
            }
        }
        assert!(!texts.iter().any(|t| in_frozen_eval(eval_bucket(t), 0.0)));
    }
}
