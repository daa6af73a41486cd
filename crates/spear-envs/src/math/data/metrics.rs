//! AIME metrics (spec §5.4): avg@k (mean accuracy over the k samples of each
//! problem, averaged over problems; the paper validates with k = 32 at T = 1.0,
//! top-p 0.6) and the unbiased pass@k estimator of Chen et al. (2021),
//! `1 − C(n−c, k) / C(n, k)` for n samples of which c are correct.

/// avg@k: `mean_p (c_p / n_p)`; problems with no samples count as 0.
pub fn avg_at_k(correct: &[Vec<bool>]) -> f64 {
    if correct.is_empty() {
        return 0.0;
    }
    let sum: f64 = correct
        .iter()
        .map(|s| {
            if s.is_empty() {
                0.0
            } else {
                s.iter().filter(|&&c| c).count() as f64 / s.len() as f64
            }
        })
        .sum();
    sum / correct.len() as f64
}

/// Unbiased pass@k for one problem with `n` samples, `c` correct (k ≤ n;
/// a larger k is clamped to n), computed as `1 − ∏_{i=n−c+1}^{n} (1 − k/i)`.
pub fn pass_at_k_one(n: usize, c: usize, k: usize) -> f64 {
    let k = k.min(n);
    if n == 0 || k == 0 {
        return 0.0;
    }
    if n - c.min(n) < k {
        return 1.0;
    }
    let mut prod = 1.0;
    for i in (n - c + 1)..=n {
        prod *= 1.0 - k as f64 / i as f64;
    }
    1.0 - prod
}

/// Mean unbiased pass@k over problems.
pub fn pass_at_k(correct: &[Vec<bool>], k: usize) -> f64 {
    if correct.is_empty() {
        return 0.0;
    }
    correct
        .iter()
        .map(|s| pass_at_k_one(s.len(), s.iter().filter(|&&c| c).count(), k))
        .sum::<f64>()
        / correct.len() as f64
}

/// pass@j for j = 1, 2, 4, … below `k`, and for `k` itself: what an evaluation report lists.
pub fn pass_at_ladder(correct: &[Vec<bool>], k: usize) -> std::collections::BTreeMap<usize, f64> {
    let mut out = std::collections::BTreeMap::new();
    let mut j = 1;
    while j < k {
        out.insert(j, pass_at_k(correct, j));
        j *= 2;
    }
    out.insert(k, pass_at_k(correct, k));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn pass_at_k_by_hand() {
        // n=4, c=1, k=2: 1 − C(3,2)/C(4,2) = 1 − 3/6 = 0.5
        assert!(close(pass_at_k_one(4, 1, 2), 0.5));
        // n=5, c=2, k=3: 1 − C(3,3)/C(5,3) = 1 − 1/10 = 0.9
        assert!(close(pass_at_k_one(5, 2, 3), 0.9));
        // n=10, c=3, k=1: c/n = 0.3
        assert!(close(pass_at_k_one(10, 3, 1), 0.3));
        // no correct sample → 0; n − c < k → 1
        assert!(close(pass_at_k_one(32, 0, 8), 0.0));
        assert!(close(pass_at_k_one(4, 3, 2), 1.0));
    }

    #[test]
    fn averages_over_problems() {
        let s = vec![
            vec![true, false, false, false],
            vec![true, true, false, false],
        ];
        // avg@4 = (1/4 + 2/4) / 2 = 0.375
        assert!(close(avg_at_k(&s), 0.375));
        // pass@2 = (0.5 + (1 − C(2,2)/C(4,2))) / 2 = (0.5 + 5/6) / 2 = 0.6666…
        assert!(close(pass_at_k(&s, 2), (0.5 + 5.0 / 6.0) / 2.0));
        assert!(close(pass_at_k(&[], 2), 0.0));
    }
}
