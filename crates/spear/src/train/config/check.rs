//! Range checks shared by the sections' `validate`, each naming the dotted key.

use spear_rl::config::ConfigError;

/// `v >= 1`.
pub(crate) fn check_pos(key: &str, v: u64) -> Result<(), ConfigError> {
    if v == 0 {
        return Err(ConfigError::new(key, "must be at least 1"));
    }
    Ok(())
}

/// `lo <= v <= hi`, finite.
pub(crate) fn check_f(key: &str, v: f64, lo: f64, hi: f64) -> Result<(), ConfigError> {
    spear_rl::config::check_range(key, v, lo, hi)
}
