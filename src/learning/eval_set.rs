//! The frozen evaluation set: a fixed share of labeled transcripts, chosen by a stable hash
//! of the transcript id, that no fine-tuning run ever trains on. The same transcript is in
//! or out on every run, in every process, for the life of the database.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Whether `id` belongs to the evaluation set holding `share` (0–1) of all transcripts.
pub fn is_frozen_eval(id: Uuid, share: f64) -> bool {
    let digest = Sha256::digest(id.as_bytes());
    let bucket = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) % 10_000;
    (bucket as f64) < share.clamp(0.0, 1.0) * 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_is_stable_and_close_to_the_share() {
        let ids: Vec<Uuid> = (0..20_000u128).map(Uuid::from_u128).collect();
        let inside = ids.iter().filter(|&&id| is_frozen_eval(id, 0.1)).count();
        assert!((1_800..2_200).contains(&inside), "{inside} of 20000");
        for id in &ids[..100] {
            assert_eq!(is_frozen_eval(*id, 0.1), is_frozen_eval(*id, 0.1));
            // A larger share keeps every member of a smaller one.
            if is_frozen_eval(*id, 0.1) {
                assert!(is_frozen_eval(*id, 0.2));
            }
        }
        assert!(!ids.iter().any(|&id| is_frozen_eval(id, 0.0)));
    }
}
