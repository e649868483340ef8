//! How much labelers agree on a task: Cohen's kappa for each pair of annotators and
//! Krippendorff's alpha (nominal) over all of them, from the current labels of the items that
//! two or more annotators labeled. Pure functions over plain rows, so each statistic is
//! tested against values worked out by hand.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One current label: which item, who gave it, which class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rating {
    pub item: String,
    pub annotator: String,
    pub label: String,
}

/// Agreement between two annotators on the items both labeled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairAgreement {
    pub annotators: [String; 2],
    /// Items both labeled.
    pub items: usize,
    /// Share of those items on which they gave the same class.
    pub observed_agreement: f64,
    /// (p_o - p_e) / (1 - p_e); `None` when chance agreement is already 1 (both gave one
    /// and the same class to everything), where kappa is not defined.
    pub cohen_kappa: Option<f64>,
}

/// The whole report for one task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agreement {
    pub annotators: Vec<String>,
    /// Items with labels from two or more annotators (the only ones agreement speaks of).
    pub items: usize,
    /// Krippendorff's alpha for nominal data over every annotator; `None` when every value
    /// is the same class (no disagreement is possible, alpha is not defined).
    pub krippendorff_alpha: Option<f64>,
    /// One entry per pair of annotators who share at least one item.
    pub pairs: Vec<PairAgreement>,
}

/// Cohen's kappa for two annotators: one `(first's class, second's class)` per shared item.
pub fn cohen_kappa(pairs: &[(&str, &str)]) -> Option<f64> {
    if pairs.is_empty() {
        return None;
    }
    let n = pairs.len() as f64;
    let observed = pairs.iter().filter(|(a, b)| a == b).count() as f64 / n;
    let (mut first, mut second) = (HashMap::new(), HashMap::new());
    for (a, b) in pairs {
        *first.entry(*a).or_insert(0usize) += 1;
        *second.entry(*b).or_insert(0usize) += 1;
    }
    let chance: f64 = first
        .iter()
        .map(|(class, &count)| {
            let other = second.get(class).copied().unwrap_or(0);
            (count as f64 / n) * (other as f64 / n)
        })
        .sum();
    if (1.0 - chance).abs() < 1e-12 {
        return None;
    }
    Some((observed - chance) / (1.0 - chance))
}

/// Krippendorff's alpha for nominal data: `units` holds, per item, the classes its
/// annotators gave (items with fewer than two values are left out, as the statistic asks).
/// alpha = 1 - D_o / D_e from the coincidence matrix (Krippendorff 2011, "Computing
/// Krippendorff's alpha-reliability").
pub fn krippendorff_alpha(units: &[Vec<&str>]) -> Option<f64> {
    let mut coincidences: HashMap<(&str, &str), f64> = HashMap::new();
    for unit in units.iter().filter(|u| u.len() >= 2) {
        let weight = 1.0 / (unit.len() - 1) as f64;
        for (i, a) in unit.iter().enumerate() {
            for (j, b) in unit.iter().enumerate() {
                if i != j {
                    *coincidences.entry((*a, *b)).or_insert(0.0) += weight;
                }
            }
        }
    }
    let mut totals: BTreeMap<&str, f64> = BTreeMap::new();
    for ((c, _), v) in &coincidences {
        *totals.entry(*c).or_insert(0.0) += v;
    }
    let n: f64 = totals.values().sum();
    if n < 2.0 {
        return None;
    }
    let observed: f64 = coincidences
        .iter()
        .filter(|((c, k), _)| c != k)
        .map(|(_, v)| v)
        .sum();
    let all: f64 = totals.values().map(|t| t * (n - t)).sum();
    let expected = all / (n - 1.0);
    if expected <= 0.0 {
        return None;
    }
    Some(1.0 - observed / expected)
}

/// The report for one task from its current labels (any order; an annotator's second
/// rating of the same item replaces the first, as a correction does in the store).
pub fn report(ratings: &[Rating]) -> Agreement {
    let mut by_item: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for r in ratings {
        by_item
            .entry(r.item.as_str())
            .or_default()
            .insert(r.annotator.as_str(), r.label.as_str());
    }
    by_item.retain(|_, labels| labels.len() >= 2);
    let annotators: BTreeSet<&str> = by_item.values().flat_map(|l| l.keys().copied()).collect();
    let units: Vec<Vec<&str>> = by_item
        .values()
        .map(|labels| labels.values().copied().collect())
        .collect();
    let names: Vec<&str> = annotators.iter().copied().collect();
    let mut pairs = Vec::new();
    for (i, a) in names.iter().enumerate() {
        for b in &names[i + 1..] {
            let shared: Vec<(&str, &str)> = by_item
                .values()
                .filter_map(|labels| Some((*labels.get(a)?, *labels.get(b)?)))
                .collect();
            if shared.is_empty() {
                continue;
            }
            let same = shared.iter().filter(|(x, y)| x == y).count();
            pairs.push(PairAgreement {
                annotators: [a.to_string(), b.to_string()],
                items: shared.len(),
                observed_agreement: same as f64 / shared.len() as f64,
                cohen_kappa: cohen_kappa(&shared),
            });
        }
    }
    Agreement {
        annotators: names.iter().map(|s| s.to_string()).collect(),
        items: by_item.len(),
        krippendorff_alpha: krippendorff_alpha(&units),
        pairs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn cohen_kappa_of_the_textbook_table() {
        // 50 items: both yes 20, first yes second no 5, first no second yes 10, both no 15.
        // p_o = 35/50 = 0.7; the first says yes to 25, the second to 30:
        // p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa = (0.7 - 0.5) / 0.5 = 0.4.
        let mut pairs = Vec::new();
        pairs.extend(std::iter::repeat_n(("yes", "yes"), 20));
        pairs.extend(std::iter::repeat_n(("yes", "no"), 5));
        pairs.extend(std::iter::repeat_n(("no", "yes"), 10));
        pairs.extend(std::iter::repeat_n(("no", "no"), 15));
        assert!(close(cohen_kappa(&pairs), 0.4), "{:?}", cohen_kappa(&pairs));
    }

    #[test]
    fn cohen_kappa_is_one_for_full_agreement_and_undefined_without_variation() {
        let agree = [("a", "a"), ("b", "b"), ("a", "a")];
        assert!(close(cohen_kappa(&agree), 1.0));
        // Both always say "a": chance agreement is 1, kappa is not defined.
        assert_eq!(cohen_kappa(&[("a", "a"), ("a", "a")]), None);
        assert_eq!(cohen_kappa(&[]), None);
        // Systematic disagreement on two balanced classes: p_o = 0, p_e = 0.5, kappa -1.
        assert!(close(cohen_kappa(&[("a", "b"), ("b", "a")]), -1.0));
    }

    #[test]
    fn krippendorff_alpha_of_a_small_hand_worked_case() {
        // Units aa, ab, bb, bb: coincidences o_aa 2, o_ab = o_ba 1, o_bb 4; n_a 3, n_b 5, n 8.
        // D_o = 2; D_e = (3 * 5 + 5 * 3) / 7 = 30 / 7; alpha = 1 - 2 * 7 / 30 = 8 / 15.
        let units = vec![
            vec!["a", "a"],
            vec!["a", "b"],
            vec!["b", "b"],
            vec!["b", "b"],
        ];
        assert!(close(krippendorff_alpha(&units), 8.0 / 15.0));
    }

    #[test]
    fn krippendorff_alpha_of_the_published_four_coder_example() {
        // Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the nominal
        // example: 4 coders, 12 units, missing values; the paper gives alpha = 0.743.
        // One row per coder, one column per unit; "." is a missing value.
        let coders = [
            ["1", "2", "3", "3", "2", "1", "4", "1", "2", ".", ".", "."],
            ["1", "2", "3", "3", "2", "2", "4", "1", "2", "5", ".", "3"],
            [".", "3", "3", "3", "2", "3", "4", "2", "2", "5", "1", "."],
            ["1", "2", "3", "3", "2", "4", "4", "1", "2", "5", "1", "."],
        ];
        let units: Vec<Vec<&str>> = (0..12)
            .map(|u| coders.iter().map(|c| c[u]).filter(|v| *v != ".").collect())
            .collect();
        let alpha = krippendorff_alpha(&units).unwrap();
        assert!((alpha - 0.743421052631579).abs() < 1e-9, "{alpha}");
    }

    #[test]
    fn krippendorff_alpha_is_undefined_when_every_value_is_one_class() {
        assert_eq!(krippendorff_alpha(&[vec!["a", "a"], vec!["a", "a"]]), None);
        assert_eq!(krippendorff_alpha(&[vec!["a"]]), None);
    }

    fn rating(item: &str, annotator: &str, label: &str) -> Rating {
        Rating {
            item: item.into(),
            annotator: annotator.into(),
            label: label.into(),
        }
    }

    #[test]
    fn the_report_keeps_shared_items_and_pairs_who_share_one() {
        let ratings = vec![
            rating("t1", "ann", "negative"),
            rating("t1", "bob", "negative"),
            rating("t2", "ann", "positive"),
            rating("t2", "bob", "negative"),
            rating("t3", "ann", "positive"),
            rating("t3", "cy", "positive"),
            // Only one annotator: not an item agreement speaks of.
            rating("t4", "dee", "positive"),
        ];
        let r = report(&ratings);
        assert_eq!(r.items, 3);
        assert_eq!(r.annotators, ["ann", "bob", "cy"]);
        // ann-bob share t1, t2; ann-cy share t3; bob-cy share nothing (no entry).
        assert_eq!(r.pairs.len(), 2);
        let ann_bob = &r.pairs[0];
        assert_eq!(ann_bob.annotators, ["ann".to_string(), "bob".to_string()]);
        assert_eq!(ann_bob.items, 2);
        assert!((ann_bob.observed_agreement - 0.5).abs() < 1e-12);
        // ann: negative, positive; bob: negative, negative. p_o 0.5, p_e 0.5 * 1 = 0.5: 0.
        assert!(close(ann_bob.cohen_kappa, 0.0));
        assert_eq!(r.pairs[1].annotators, ["ann".to_string(), "cy".to_string()]);
        // Units: {neg, neg}, {pos, neg}, {pos, pos}: o_nn 2, o_np = o_pn 1, o_pp 2; n 6,
        // n_n = n_p = 3. D_o 2; D_e (9 + 9) / 5 = 3.6; alpha = 1 - 2 / 3.6 = 4 / 9.
        assert!(close(r.krippendorff_alpha, 4.0 / 9.0));
    }
}
