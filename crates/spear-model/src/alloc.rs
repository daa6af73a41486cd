//! Keeping freed tensor memory inside the process (glibc malloc tuning).
//!
//! glibc serves every allocation above its mmap threshold (at most 32 MB, dynamic) with a fresh
//! `mmap` and returns it to the kernel on `free`. A training step allocates and frees hundreds of
//! such tensors (activations, gradients, `[rows, vocab]` logits), so each one is page-faulted and
//! zeroed by the kernel again: the profile of a SmolLM2-135M step showed about a third of the CPU
//! time in the kernel (`clear_page_erms`, page-fault handling; BENCHMARKS.md). With mmap disabled
//! and trimming off, freed blocks go back to malloc's free lists and the next step reuses them.
//! Peak RSS stays about the same (it is set by the largest step); memory is not handed back to the
//! kernel between steps.

use std::sync::OnceLock;

/// Environment variable that turns the tuning off (`0`).
pub const ENV_KEEP_FREED_MEMORY: &str = "SPEAR_KEEP_FREED_MEMORY";

/// Applies the malloc tuning once per process (glibc on Linux; elsewhere a no-op). Returns
/// whether it is active. Called by [`crate::Decoder::new`]; `SPEAR_KEEP_FREED_MEMORY=0` disables
/// it.
pub fn keep_freed_memory() -> bool {
    static ACTIVE: OnceLock<bool> = OnceLock::new();
    *ACTIVE.get_or_init(|| {
        if std::env::var(ENV_KEEP_FREED_MEMORY).is_ok_and(|v| v.trim() == "0") {
            return false;
        }
        tune()
    })
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune() -> bool {
    // SAFETY: mallopt only changes malloc parameters; -1 disables trimming (mallopt(3)).
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, -1) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune() -> bool {
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn tuning_is_applied_on_glibc_and_idempotent() {
        let a = super::keep_freed_memory();
        assert_eq!(a, super::keep_freed_memory());
        if cfg!(all(target_os = "linux", target_env = "gnu"))
            && std::env::var(super::ENV_KEEP_FREED_MEMORY).is_err()
        {
            assert!(a, "mallopt refused the settings");
        }
        // A large allocation still works (served from the heap, not mmap).
        let v = vec![1u8; 64 << 20];
        assert_eq!(v.iter().map(|&x| x as usize).sum::<usize>(), 64 << 20);
    }
}
