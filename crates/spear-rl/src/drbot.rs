//! Dr.BoT filters (spec §3): response filters that mask a sample out of the
//! loss (it stays in the group statistics), and the low-variance group filter.

use crate::config::DrBotConfig;
use crate::sample::{group_samples, trajectory_mean_scores, Batch, GroupId, GroupIndex};
use crate::stats::{largest_power_of_two_at_most, std_population};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::collections::{HashMap, HashSet};
use thiserror::Error;

/// Mojibake markers of the unreadable filter, exactly the list of
/// `EpisodeRewardManager` (spec §3): U+FFFD, UTF-8 bytes of U+FFFD read as
/// Latin-1 ("ï¿½"), the same for "？" ("ï¼Ÿ", and with a lost last byte),
/// doubled/quadrupled runs and the byte-level BPE "Ġï¿½".
pub const UNREADABLE_MARKERS: [&str; 7] = [
    "\u{FFFD}",
    "\u{EF}\u{BF}\u{BD}",
    "\u{EF}\u{BC}\u{FFFD}",
    "\u{EF}\u{BC}\u{178}",
    "\u{EF}\u{BF}\u{BD}\u{EF}\u{BF}\u{BD}",
    "\u{EF}\u{BF}\u{BD}\u{EF}\u{BF}\u{BD}\u{EF}\u{BF}\u{BD}\u{EF}\u{BF}\u{BD}",
    "\u{120}\u{EF}\u{BF}\u{BD}",
];

/// Which Dr.BoT response filters flag one response (spec §3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponseFlags {
    /// Valid response length ≥ `max_response_length`.
    pub overlong: bool,
    /// Void turn: no `<action>…</action>` after the last `</think>`.
    pub incomplete: bool,
    /// Some token n-gram occurs ≥ threshold times.
    pub repetitive: bool,
    /// Contains a mojibake marker.
    pub unreadable: bool,
}

/// Counts of masked samples per filter (the official metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterStats {
    /// `overlong_responses`.
    pub overlong: usize,
    /// `incomplete_responses`.
    pub incomplete: usize,
    /// `repetitive_responses`.
    pub repetitive: usize,
    /// `unreadableBPE_responses`.
    pub unreadable: usize,
    /// Samples masked by at least one enabled filter.
    pub masked: usize,
}

/// Overlong (spec §3): `len ≥ max_response_length`.
pub fn is_overlong(response_len: usize, max_response_length: usize) -> bool {
    response_len >= max_response_length
}

/// Void turn / incomplete (spec §3, `is_think_action_valid`): the text after
/// the last `</think>` (or the whole text if there is none), trimmed, holds no
/// `<action>…</action>`. Empty or whitespace-only text is incomplete.
pub fn is_incomplete(text: &str) -> bool {
    if text.trim().is_empty() {
        return true;
    }
    let candidate = match text.rfind("</think>") {
        Some(p) => &text[p + "</think>".len()..],
        None => text,
    };
    match candidate.find("<action>") {
        Some(open) => !candidate[open + "<action>".len()..].contains("</action>"),
        None => true,
    }
}

/// Repetitive (spec §3, `has_repeated_ngrams`): some token-id n-gram occurs at
/// least `threshold` times (overlapping windows).
///
/// Fast path: a polynomial rolling hash of every window, counted in a hash
/// map; when a hash reaches `threshold` its windows are compared token by
/// token, so a hash collision can never flag a response. [`is_repetitive_reference`] is the
/// plain counting version the tests hold this one equal to.
pub fn is_repetitive(tokens: &[u32], n: usize, threshold: usize) -> bool {
    if n == 0 || tokens.len() < n {
        return false;
    }
    let windows = tokens.len() - n + 1;
    if windows < threshold.max(1) {
        return false;
    }
    if threshold <= 1 {
        return true;
    }
    // h(w) = Σ (w_k + 1)·B^(n−1−k) mod 2^64, rolled one token at a time.
    const B: u64 = 0x0000_0100_0000_01b3;
    let b_pow_n1 = (1..n).fold(1u64, |acc, _| acc.wrapping_mul(B));
    let mut h = tokens[..n].iter().fold(0u64, |acc, &t| {
        acc.wrapping_mul(B).wrapping_add(t as u64 + 1)
    });
    let mut hashes: Vec<(u64, u32)> = Vec::with_capacity(windows);
    hashes.push((h, 0));
    for start in 1..windows {
        let old = tokens[start - 1] as u64 + 1;
        let new = tokens[start + n - 1] as u64 + 1;
        h = h
            .wrapping_sub(old.wrapping_mul(b_pow_n1))
            .wrapping_mul(B)
            .wrapping_add(new);
        hashes.push((h, start as u32));
    }
    let mut counts: HashMap<u64, u32, BuildMixHasher> =
        HashMap::with_capacity_and_hasher(windows, BuildMixHasher);
    for &(h, _) in &hashes {
        let c = counts.entry(h).or_insert(0);
        *c += 1;
        if *c as usize >= threshold {
            let run: Vec<(u64, u32)> = hashes.iter().copied().filter(|&(x, _)| x == h).collect();
            if run_has_exact_repeat(tokens, n, &run, threshold) {
                return true;
            }
        }
    }
    false
}

/// Hasher for already-hashed `u64` keys: a splitmix64 finaliser spreads the
/// polynomial hash's bits (no SipHash cost).
#[derive(Default, Clone, Copy)]
struct BuildMixHasher;

#[derive(Default)]
struct MixHasher(u64);

impl std::hash::BuildHasher for BuildMixHasher {
    type Hasher = MixHasher;
    fn build_hasher(&self) -> MixHasher {
        MixHasher(0)
    }
}

impl std::hash::Hasher for MixHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = x;
    }
}

/// Within windows of equal hash, is some exact n-gram present ≥ threshold times?
fn run_has_exact_repeat(tokens: &[u32], n: usize, run: &[(u64, u32)], threshold: usize) -> bool {
    let mut rest: Vec<usize> = run.iter().map(|&(_, s)| s as usize).collect();
    while rest.len() >= threshold {
        let reference = &tokens[rest[0]..rest[0] + n];
        let (same, other): (Vec<usize>, Vec<usize>) =
            rest.iter().partition(|&&s| &tokens[s..s + n] == reference);
        if same.len() >= threshold {
            return true;
        }
        rest = other;
    }
    false
}

/// Reference implementation of [`is_repetitive`]: count every window in a map
/// (the official `Counter` of joined n-grams).
pub fn is_repetitive_reference(tokens: &[u32], n: usize, threshold: usize) -> bool {
    if n == 0 || tokens.len() < n {
        return false;
    }
    let mut counts: HashMap<&[u32], usize> = HashMap::new();
    for w in tokens.windows(n) {
        *counts.entry(w).or_insert(0) += 1;
    }
    counts.values().any(|&c| c >= threshold)
}

/// Unreadable (spec §3): the decoded text contains any [`UNREADABLE_MARKERS`].
pub fn is_unreadable(text: &str) -> bool {
    // Every marker contains U+FFFD or 'ï' (U+00EF): one pass rules most texts out.
    if !text.contains(['\u{FFFD}', '\u{EF}']) {
        return false;
    }
    UNREADABLE_MARKERS.iter().any(|m| text.contains(m))
}

/// All four flags of one response (`tokens` = valid response ids, `text` =
/// their decoding with special tokens kept).
pub fn response_flags(tokens: &[u32], text: &str, cfg: &DrBotConfig) -> ResponseFlags {
    ResponseFlags {
        overlong: is_overlong(tokens.len(), cfg.max_response_length as usize),
        incomplete: is_incomplete(text),
        repetitive: is_repetitive(
            tokens,
            cfg.repetition_ngram as usize,
            cfg.repetition_threshold as usize,
        ),
        unreadable: is_unreadable(text),
    }
}

/// Applies the enabled response filters (spec §3): every flagged sample gets
/// `response_mask = 0` and keeps its score (it still counts in group
/// statistics). `flags[i]` belongs to `batch.samples[i]`; compute it with
/// [`response_flags`] (agent) or set `incomplete` from the math verifier's
/// "no boxed answer".
///
/// # Panics
/// If `flags.len() != batch.len()`.
pub fn apply_response_filters(
    batch: &mut Batch,
    flags: &[ResponseFlags],
    cfg: &DrBotConfig,
) -> FilterStats {
    assert_eq!(flags.len(), batch.len(), "one ResponseFlags per sample");
    let mut st = FilterStats::default();
    for (s, f) in batch.samples.iter_mut().zip(flags) {
        let o = cfg.filter_overlong && f.overlong;
        let i = cfg.filter_incomplete && f.incomplete;
        let r = cfg.filter_repetitive && f.repetitive;
        let u = cfg.filter_unreadable && f.unreadable;
        st.overlong += o as usize;
        st.incomplete += i as usize;
        st.repetitive += r as usize;
        st.unreadable += u as usize;
        if o || i || r || u {
            st.masked += 1;
            s.mask_out();
        }
    }
    st
}

/// The group filter could not keep any group.
#[derive(Debug, Error, Clone, PartialEq)]
#[error(
    "rollout_filter_ratio {ratio} keeps no group out of {groups}; raise it or collect more groups"
)]
pub struct GroupFilterError {
    /// The configured ratio.
    pub ratio: f64,
    /// Number of groups in the batch.
    pub groups: usize,
}

/// Result of the std group filter.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupFilterReport {
    /// Kept groups with their σ_g, highest first.
    pub kept: Vec<(GroupId, f64)>,
    /// Mean σ_g over all groups (`rollout/in_group_std`).
    pub mean_std_all: f64,
    /// Samples before and after the filter.
    pub samples_before: usize,
    /// Samples after the filter (and the power-of-two subsampling).
    pub samples_after: usize,
}

/// Low-variance group filter (spec §3, `_filter_rollout`, type `std`).
///
/// σ_g = `np.std` (population) over the trajectories of group g of their mean
/// score (mean over step-samples of s_i). The ⌊ratio·#groups⌋ groups with the
/// highest σ_g are kept (stable sort: ties keep batch order). With
/// `power_of_two_subsample`, the kept step-samples are then shuffled with
/// `rng` and cut to the largest power of two ≤ their count (1 → 0, as the
/// official `[:-1]` slice does). `ratio = 1` returns the batch untouched (the
/// official early return, no subsampling). Run it on scores before the
/// invalid-action penalty (spec §2.8 order).
pub fn filter_groups_by_std(
    batch: &Batch,
    cfg: &DrBotConfig,
    rng: &mut ChaCha8Rng,
) -> Result<(Batch, GroupFilterReport), GroupFilterError> {
    let groups = group_samples(&batch.samples);
    let (idx, report) = select_groups_by_std(batch, &groups, cfg, rng)?;
    let out = Batch::new(idx.iter().map(|&i| batch.samples[i].clone()).collect());
    Ok((out, report))
}

/// [`filter_groups_by_std`] as indices: the ascending sample indices the filter keeps (all of
/// them with the filter off), from the batch's grouping computed once by the caller. The same
/// draws from `rng` as [`filter_groups_by_std`].
pub fn select_groups_by_std(
    batch: &Batch,
    groups: &[GroupIndex],
    cfg: &DrBotConfig,
    rng: &mut ChaCha8Rng,
) -> Result<(Vec<usize>, GroupFilterReport), GroupFilterError> {
    let stds: Vec<(GroupId, f64)> = groups
        .iter()
        .map(|g| {
            (
                g.uid,
                std_population(&trajectory_mean_scores(&batch.samples, g)),
            )
        })
        .collect();
    let mean_std_all = if stds.is_empty() {
        0.0
    } else {
        stds.iter().map(|(_, s)| s).sum::<f64>() / stds.len() as f64
    };
    if cfg.rollout_filter_ratio >= 1.0 {
        let mut kept = stds.clone();
        kept.sort_by(|a, b| b.1.total_cmp(&a.1));
        return Ok((
            (0..batch.len()).collect(),
            GroupFilterReport {
                kept,
                mean_std_all,
                samples_before: batch.len(),
                samples_after: batch.len(),
            },
        ));
    }
    let n_keep = (cfg.rollout_filter_ratio * groups.len() as f64) as usize;
    if n_keep == 0 {
        return Err(GroupFilterError {
            ratio: cfg.rollout_filter_ratio,
            groups: groups.len(),
        });
    }
    let mut ranked = stds;
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(n_keep);
    let keep: HashSet<GroupId> = ranked.iter().map(|(g, _)| *g).collect();
    let mut idx: Vec<usize> = (0..batch.len())
        .filter(|&i| keep.contains(&batch.samples[i].uid))
        .collect();
    if cfg.power_of_two_subsample {
        let n = largest_power_of_two_at_most(idx.len());
        let mut shuffled = idx.clone();
        shuffled.shuffle(rng);
        shuffled.truncate(n);
        shuffled.sort_unstable();
        idx = shuffled;
    }
    let report = GroupFilterReport {
        kept: ranked,
        mean_std_all,
        samples_before: batch.len(),
        samples_after: idx.len(),
    };
    Ok((idx, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::test_util::sample;
    use rand::SeedableRng;

    #[test]
    fn incomplete_rules() {
        assert!(!is_incomplete("<think>x</think><action>go north</action>"));
        // action only before the last </think> → void turn
        assert!(is_incomplete("<action>go</action><think>x</think> nothing"));
        // no </think>: the whole text is searched
        assert!(!is_incomplete("<action>look</action>"));
        assert!(is_incomplete("<think>a</think><action>unclosed"));
        assert!(is_incomplete("   "));
        // empty action content still matches `<action>(.*?)</action>`
        assert!(!is_incomplete("</think><action></action>"));
    }

    #[test]
    fn repetition_threshold_is_inclusive() {
        // a 2-gram [1, 2] repeated: tokens 1 2 1 2 1 2 has windows 12,21,12,21,12 → "12" ×3
        let t = [1, 2, 1, 2, 1, 2];
        assert!(is_repetitive(&t, 2, 3));
        assert!(!is_repetitive(&t, 2, 4));
        // spec values: a 20-gram 10 times needs 20 + 9 = 29 tokens of a constant run
        let run = vec![7u32; 29];
        assert!(is_repetitive(&run, 20, 10)); // 29 − 20 + 1 = 10 windows
        assert!(!is_repetitive(&run[..28], 20, 10)); // 9 windows
                                                     // a period-3 pattern repeated: [1,2,3]×12 has the 20-gram starting at 0 at starts 0,3,…,15 → 6 times
        let p: Vec<u32> = [1, 2, 3].repeat(12);
        assert!(is_repetitive(&p, 20, 6));
        assert!(!is_repetitive(&p, 20, 7));
        assert_eq!(is_repetitive(&p, 20, 7), is_repetitive_reference(&p, 20, 7));
    }

    proptest::proptest! {
        #[test]
        fn fast_repetition_matches_reference(
            tokens in proptest::collection::vec(0u32..3, 0..80),
            n in 1usize..6,
            threshold in 1usize..8,
        ) {
            proptest::prop_assert_eq!(
                is_repetitive(&tokens, n, threshold),
                is_repetitive_reference(&tokens, n, threshold)
            );
        }
    }

    #[test]
    fn unreadable_and_overlong() {
        assert!(is_unreadable("ok \u{FFFD} bad"));
        assert!(is_unreadable("Ġï¿½"));
        assert!(is_unreadable("ï¼Ÿ"));
        assert!(!is_unreadable("plain text ？ is fine"));
        assert!(is_overlong(512, 512));
        assert!(!is_overlong(511, 512));
    }

    #[test]
    fn filters_mask_but_keep_scores() {
        let mut b = Batch::new(vec![sample(0, 0, 0, 1.0), sample(0, 1, 0, 2.0)]);
        let cfg = DrBotConfig::default();
        let flags = [
            ResponseFlags {
                unreadable: true,
                ..Default::default()
            },
            ResponseFlags::default(),
        ];
        let st = apply_response_filters(&mut b, &flags, &cfg);
        assert_eq!(st.masked, 1);
        assert_eq!(st.unreadable, 1);
        assert!(!b.samples[0].has_loss_tokens());
        assert_eq!(b.samples[0].score, 1.0);
        assert!(b.samples[1].has_loss_tokens());
        // switched off → nothing masked
        let off = DrBotConfig {
            filter_unreadable: false,
            ..cfg
        };
        let mut b2 = Batch::new(vec![sample(0, 0, 0, 1.0), sample(0, 1, 0, 2.0)]);
        assert_eq!(apply_response_filters(&mut b2, &flags, &off).masked, 0);
    }

    #[test]
    fn std_group_filter_by_hand() {
        // 4 groups of 2 one-step trajectories:
        // g0: [0, 10] σ = 5 ; g1: [0, 0] σ = 0 ; g2: [0, 4] σ = 2 ; g3: [1, 3] σ = 1
        let mut s = Vec::new();
        for (g, (a, b)) in [(0.0, 10.0), (0.0, 0.0), (0.0, 4.0), (1.0, 3.0)]
            .into_iter()
            .enumerate()
        {
            s.push(sample(g as u64, 2 * g as u64, 0, a));
            s.push(sample(g as u64, 2 * g as u64 + 1, 0, b));
        }
        let batch = Batch::new(s);
        let cfg = DrBotConfig {
            power_of_two_subsample: false,
            ..DrBotConfig::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let (out, rep) = filter_groups_by_std(&batch, &cfg, &mut rng).unwrap();
        // keep ⌊0.75·4⌋ = 3 groups: g0 (5), g2 (2), g3 (1); g1 (0) dropped
        let kept: Vec<u64> = rep.kept.iter().map(|(g, _)| g.0).collect();
        assert_eq!(kept, vec![0, 2, 3]);
        assert_eq!(out.len(), 6);
        assert!(out.samples.iter().all(|x| x.uid.0 != 1));
        // mean σ over all = (5 + 0 + 2 + 1)/4 = 2
        assert!((rep.mean_std_all - 2.0).abs() < 1e-12);
        // with power-of-two subsampling: 6 kept samples → 4, seeded
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let (p2, _) = filter_groups_by_std(&batch, &DrBotConfig::default(), &mut rng).unwrap();
        assert_eq!(p2.len(), 4);
        assert!(p2.samples.iter().all(|x| x.uid.0 != 1));
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let (p2b, _) = filter_groups_by_std(&batch, &DrBotConfig::default(), &mut rng).unwrap();
        assert_eq!(p2, p2b);
    }

    #[test]
    fn group_filter_errors_and_ratio_one() {
        let batch = Batch::new(vec![sample(0, 0, 0, 1.0)]);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        // ⌊0.75·1⌋ = 0 groups → error naming the ratio
        let e = filter_groups_by_std(&batch, &DrBotConfig::default(), &mut rng).unwrap_err();
        assert_eq!(e.groups, 1);
        let off = DrBotConfig {
            rollout_filter_ratio: 1.0,
            ..DrBotConfig::default()
        };
        let (out, _) = filter_groups_by_std(&batch, &off, &mut rng).unwrap();
        assert_eq!(out, batch);
    }
}
