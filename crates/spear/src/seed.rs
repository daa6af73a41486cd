//! Seeds: every random choice of a run derives from `run.seed` through these two functions,
//! so one seed fixes a run. [`mix_seed`] hashes a tuple of integers (task draws, environment
//! resets, per-sequence sampling of the agent loop, evaluation); [`turn_seed`] is the math tool
//! loop's chain over (seed, iteration, problem, member, turn). Both end in SplitMix64's
//! finaliser; they are kept as two functions because runs recorded before they were gathered
//! here depend on their exact values.

/// SplitMix64's output function on `x` (state advanced by the golden gamma first).
pub fn splitmix64(x: u64) -> u64 {
    finalise(x.wrapping_add(0x9E37_79B9_7F4A_7C15))
}

/// SplitMix64's finaliser (the avalanche of the output function).
fn finalise(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Independent seeds from a tuple of integers (order matters).
pub fn mix_seed(parts: &[u64]) -> u64 {
    let mut h: u64 = 0x9E37_79B9_7F4A_7C15;
    for &p in parts {
        h ^= p.wrapping_add(0x9E37_79B9_7F4A_7C15).wrapping_add(h << 6);
        h = finalise(h);
    }
    h
}

/// The generation seed of one turn of one math conversation: a SplitMix64 chain over
/// (seed, iteration, problem, member, turn). Depends on nothing else (batch composition,
/// order of finishing), so rollouts are reproducible from the run seed.
pub fn turn_seed(seed: u64, iteration: u64, problem: u64, member: u64, turn: u64) -> u64 {
    let mut h = splitmix64(seed);
    for v in [iteration, problem, member, turn] {
        h = splitmix64(h ^ splitmix64(v));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference_value() {
        // The first output of SplitMix64 seeded with 0 (Vigna's reference implementation).
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn mix_seed_is_deterministic_and_spreads() {
        assert_eq!(mix_seed(&[1, 2, 3]), mix_seed(&[1, 2, 3]));
        assert_ne!(mix_seed(&[1, 2, 3]), mix_seed(&[1, 3, 2]));
        assert_ne!(mix_seed(&[0]), mix_seed(&[1]));
        // Pinned: recorded runs depend on these exact values.
        assert_eq!(mix_seed(&[]), 0x9E37_79B9_7F4A_7C15);
    }

    #[test]
    fn turn_seeds_distinguish_every_coordinate() {
        let base = turn_seed(1, 2, 3, 4, 5);
        assert_eq!(base, turn_seed(1, 2, 3, 4, 5));
        for other in [
            turn_seed(0, 2, 3, 4, 5),
            turn_seed(1, 0, 3, 4, 5),
            turn_seed(1, 2, 0, 4, 5),
            turn_seed(1, 2, 3, 0, 5),
            turn_seed(1, 2, 3, 4, 0),
            turn_seed(1, 2, 4, 3, 5),
            turn_seed(1, 3, 2, 4, 5),
        ] {
            assert_ne!(base, other);
        }
    }
}
