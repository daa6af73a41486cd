//! The sandbox's own Python environment: a venv with pinned numpy and sympy,
//! created once per machine and cached (`$SPEAR_CACHE/sandbox-venv`, else
//! `$XDG_CACHE_HOME/spear/sandbox-venv`, else `~/.cache/spear/sandbox-venv`).
//!
//! `SPEAR_SANDBOX_PYTHON=/path/to/python` skips the venv and uses that
//! interpreter as it is (it must import numpy, which the wrapper code needs).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use thiserror::Error;

/// Packages installed into the sandbox venv: the recipe's wrapper imports numpy;
/// sympy (with its only dependency mpmath) is what SandboxFusion's image offers
/// for symbolic maths. `numpy` is chosen by Python version (see [`numpy_pin`]).
pub const PINNED_PACKAGES: [&str; 2] = ["sympy==1.14.0", "mpmath==1.3.0"];

/// numpy pin for a Python minor version: 2.3.5 has wheels for 3.11–3.14,
/// 2.2.6 for 3.10–3.13.
pub fn numpy_pin(minor: u32) -> &'static str {
    if minor >= 11 {
        "numpy==2.3.5"
    } else {
        "numpy==2.2.6"
    }
}

/// Why the sandbox Python could not be prepared.
#[derive(Debug, Error)]
pub enum VenvError {
    /// No usable `python3`.
    #[error("python3 was not found or does not run ({0}); install Python 3.10+ (e.g. `apt-get install python3 python3-venv`) or set SPEAR_SANDBOX_PYTHON")]
    PythonMissing(String),
    /// `python3 -m venv` failed.
    #[error("creating the sandbox venv at {path} failed: {stderr}\ninstall the venv module (e.g. `apt-get install python3-venv`)")]
    VenvFailed {
        /// The venv directory.
        path: PathBuf,
        /// The tail of the command's stderr.
        stderr: String,
    },
    /// The venv has no pip.
    #[error("the sandbox venv at {0} has no pip; install `python3-pip` / ensurepip, or set SPEAR_SANDBOX_PYTHON")]
    PipMissing(PathBuf),
    /// `pip install` failed (offline? no wheel?).
    #[error("installing {packages} into {path} failed (the first run needs PyPI): {stderr}")]
    InstallFailed {
        /// The venv directory.
        path: PathBuf,
        /// What was being installed.
        packages: String,
        /// The tail of pip's stderr.
        stderr: String,
    },
    /// The interpreter does not work as expected after setup.
    #[error("the sandbox python {path} does not work: {msg}")]
    Broken {
        /// The interpreter.
        path: PathBuf,
        /// What failed.
        msg: String,
    },
    /// Filesystem trouble in the cache directory.
    #[error("cache directory {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// A ready interpreter and the paths a sandbox must expose read-only for it.
#[derive(Debug, Clone, PartialEq)]
pub struct PythonEnv {
    /// The interpreter to run (`<venv>/bin/python`).
    pub python: PathBuf,
    /// Directories to bind read-only into the sandbox (venv, base installation).
    pub ro_paths: Vec<PathBuf>,
}

/// `$SPEAR_CACHE`, else `$XDG_CACHE_HOME/spear`, else `$HOME/.cache/spear`, else
/// `<tmp>/spear-cache`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("SPEAR_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(p).join("spear");
    }
    if let Some(p) = std::env::var_os("HOME") {
        return PathBuf::from(p).join(".cache").join("spear");
    }
    std::env::temp_dir().join("spear-cache")
}

fn tail(s: &[u8]) -> String {
    let s = String::from_utf8_lossy(s);
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

fn io_err(path: &Path, source: std::io::Error) -> VenvError {
    VenvError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl PythonEnv {
    /// The cached sandbox venv, created on first use (needs PyPI once).
    pub fn ensure_default() -> Result<PythonEnv, VenvError> {
        if let Some(p) = std::env::var_os("SPEAR_SANDBOX_PYTHON") {
            return PythonEnv::probe(Path::new(&p));
        }
        PythonEnv::ensure(&default_cache_dir())
    }

    /// The venv `<cache_dir>/sandbox-venv`, created if missing or incomplete.
    pub fn ensure(cache_dir: &Path) -> Result<PythonEnv, VenvError> {
        let venv = cache_dir.join("sandbox-venv");
        let marker = venv.join(".spear-ready");
        fs::create_dir_all(cache_dir).map_err(|e| io_err(cache_dir, e))?;
        if marker.exists() {
            return PythonEnv::probe(&venv.join("bin").join("python"));
        }
        let lock = cache_dir.join("sandbox-venv.lock");
        let _guard = DirLock::acquire(&lock, &marker)?;
        if marker.exists() {
            return PythonEnv::probe(&venv.join("bin").join("python"));
        }
        let python3 = std::env::var_os("SPEAR_PYTHON3").unwrap_or_else(|| "python3".into());
        let out = Command::new(&python3)
            .args(["-c", "import sys, venv; print(sys.version_info[1])"])
            .output()
            .map_err(|e| VenvError::PythonMissing(e.to_string()))?;
        if !out.status.success() {
            return Err(VenvError::PythonMissing(tail(&out.stderr)));
        }
        let minor: u32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(11);
        if venv.exists() {
            fs::remove_dir_all(&venv).map_err(|e| io_err(&venv, e))?;
        }
        tracing::info!(
            "creating the sandbox Python venv at {} (once per machine)...",
            venv.display()
        );
        let out = Command::new(&python3)
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .output()
            .map_err(|e| VenvError::PythonMissing(e.to_string()))?;
        if !out.status.success() {
            return Err(VenvError::VenvFailed {
                path: venv,
                stderr: tail(&out.stderr),
            });
        }
        let py = venv.join("bin").join("python");
        let pip_ok = Command::new(&py)
            .args(["-m", "pip", "--version"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !pip_ok {
            return Err(VenvError::PipMissing(venv));
        }
        let mut pkgs = vec![numpy_pin(minor)];
        pkgs.extend(PINNED_PACKAGES);
        let out = Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "-q",
            ])
            .args(&pkgs)
            .output()
            .map_err(|e| VenvError::PythonMissing(e.to_string()))?;
        if !out.status.success() {
            return Err(VenvError::InstallFailed {
                path: venv,
                packages: pkgs.join(" "),
                stderr: tail(&out.stderr),
            });
        }
        let env = PythonEnv::probe(&py)?;
        fs::write(&marker, pkgs.join("\n")).map_err(|e| io_err(&marker, e))?;
        Ok(env)
    }

    /// Inspect an interpreter: it must run and import numpy; returns it with
    /// the directories it needs (its `sys.prefix`, `sys.base_prefix`, the real
    /// path of the executable's directory), symlinks resolved.
    pub fn probe(python: &Path) -> Result<PythonEnv, VenvError> {
        let script = "import sys, os, numpy\nprint(os.path.realpath(sys.prefix))\nprint(os.path.realpath(sys.base_prefix))\nprint(os.path.dirname(os.path.realpath(sys.executable)))";
        let out = Command::new(python)
            .args(["-I", "-c", script])
            .output()
            .map_err(|e| VenvError::Broken {
                path: python.to_path_buf(),
                msg: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(VenvError::Broken {
                path: python.to_path_buf(),
                msg: tail(&out.stderr),
            });
        }
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut ro_paths: Vec<PathBuf> = Vec::new();
        for line in text.lines() {
            let p = PathBuf::from(line.trim());
            if p.as_os_str().is_empty() || ro_paths.iter().any(|q| p.starts_with(q)) {
                continue;
            }
            ro_paths.retain(|q| !q.starts_with(&p));
            ro_paths.push(p);
        }
        Ok(PythonEnv {
            python: python.to_path_buf(),
            ro_paths,
        })
    }
}

/// A cross-process lock: a directory created atomically; stale after 20 min.
struct DirLock(PathBuf);

impl DirLock {
    fn acquire(path: &Path, done_marker: &Path) -> Result<DirLock, VenvError> {
        let start = Instant::now();
        loop {
            match fs::create_dir(path) {
                Ok(()) => return Ok(DirLock(path.to_path_buf())),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok())
                        .is_some_and(|age| age > Duration::from_secs(1200));
                    if stale || done_marker.exists() {
                        let _ = fs::remove_dir(path);
                        if done_marker.exists() {
                            return Ok(DirLock(PathBuf::new()));
                        }
                        continue;
                    }
                    if start.elapsed() > Duration::from_secs(1800) {
                        return Err(io_err(path, e));
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => return Err(io_err(path, e)),
            }
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = fs::remove_dir(&self.0);
        }
    }
}
