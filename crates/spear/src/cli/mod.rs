//! One module per area of the command tree.

pub mod household;
pub mod math;
pub mod model;
pub mod report;
pub mod serve;
pub mod train;
pub mod webshop;

/// A clap value parser for counts that must be at least 1 (`--reps 0` is an error, not a
/// panic or a silent 1).
pub fn at_least_one(s: &str) -> Result<usize, String> {
    let n: usize = s
        .trim()
        .parse()
        .map_err(|e| format!("{s:?} is not a whole number: {e}"))?;
    if n == 0 {
        return Err("must be at least 1".into());
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    #[test]
    fn at_least_one_refuses_zero_and_garbage() {
        assert_eq!(super::at_least_one("3"), Ok(3));
        assert!(super::at_least_one("0").unwrap_err().contains("at least 1"));
        assert!(super::at_least_one("-1").is_err());
        assert!(super::at_least_one("x").is_err());
    }
}
