//! Local execution: bubblewrap isolation plus rlimits, or rlimits only.
//!
//! **Bubblewrap** (default when `bwrap` is installed). The sandbox sees a fresh
//! root with only:
//! * `/usr` read-only (the dynamic loader and system libraries; `/lib*` and
//!   `/bin` as in the host, usually symlinks into `/usr`);
//! * the sandbox interpreter's own directories read-only (the venv and its base
//!   installation, see [`PythonEnv::ro_paths`]): no home directory, no project
//!   checkout, no `/etc`;
//! * a private, size-limited `/tmp` (the working directory, `main.py` in it);
//! * a minimal `/dev` and a `/proc` of its own PID namespace;
//! * everything but `/tmp` read-only (`--remount-ro /` and `/dev`); bwrap itself
//!   runs with an empty environment so no secret of the caller is visible.
//!
//! Namespaces: PID, network (no interfaces: any connection fails), IPC, UTS,
//! cgroup; `--new-session` (no terminal injection), `--die-with-parent`.
//! When the caller is root, the program runs as a dedicated unprivileged uid
//! (61000 + slot, via `setpriv` inside the sandbox) so that `RLIMIT_NPROC`
//! applies (the kernel exempts uid 0) and the program cannot signal or write
//! anything root owns.
//!
//! **rlimits** (both modes, set in `pre_exec`): `RLIMIT_CPU` (timeout + 1 s),
//! `RLIMIT_AS` (memory), `RLIMIT_NPROC`, `RLIMIT_FSIZE`, `RLIMIT_NOFILE`,
//! `RLIMIT_CORE = 0`; the process starts a new session and the whole process
//! group is killed with `SIGKILL` at the wall-clock limit.
//!
//! **rlimits only** is not an isolation boundary: the program can read and
//! write whatever the caller can, and reach the network. It prints a loud
//! warning when chosen.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use super::{Executor, Limits, PythonEnv, RunResult, RunStatus};

/// Which local mechanism is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// bubblewrap namespaces + rlimits.
    Bwrap,
    /// rlimits and a process group only (no filesystem/network isolation).
    RlimitsOnly,
}

/// Errors setting up a local executor.
#[derive(Debug, thiserror::Error)]
pub enum LocalSetupError {
    /// `bwrap` was asked for but is not installed.
    #[error("refusing to run model-written code without isolation: bubblewrap (`bwrap`) is not installed or does not run: {0}. Install it (Debian/Ubuntu: `sudo apt-get install bubblewrap`; Fedora: `sudo dnf install bubblewrap`). Only for trusted code, the rlimits-only mode (NO isolation) can be chosen by name: `--isolation rlimits`, or `env.math.sandbox.backend = \"rlimits\"` in a training config")]
    BwrapMissing(String),
    /// `bwrap` is installed but cannot run the sandbox on this machine.
    #[error("refusing to run model-written code without isolation: bubblewrap is installed but the sandbox does not start here ({0}); in a container, allow user namespaces (or run privileged). Only for trusted code, the rlimits-only mode (NO isolation) can be chosen by name: `--isolation rlimits`, or `env.math.sandbox.backend = \"rlimits\"` in a training config")]
    BwrapBroken(String),
    /// Running as root needs `setpriv` (util-linux) to drop to an unprivileged uid.
    #[error("running the sandbox as root needs `setpriv` (util-linux) at {0}; install util-linux")]
    SetprivMissing(String),
}

/// Path of a working `bwrap`, or why there is none.
pub fn bwrap_available() -> Result<PathBuf, String> {
    let path = find_in_path("bwrap").ok_or_else(|| "`bwrap` is not on PATH".to_string())?;
    let out = Command::new(&path)
        .arg("--version")
        .output()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if out.status.success() {
        Ok(path)
    } else {
        Err(format!("`{} --version` failed", path.display()))
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

const UID_BASE: u32 = 61000;
const UID_SLOTS: u32 = 1024;

/// Runs programs with the sandbox interpreter on this machine.
pub struct LocalExecutor {
    env: PythonEnv,
    isolation: Isolation,
    bwrap: Option<PathBuf>,
    setpriv: Option<PathBuf>,
    is_root: bool,
    nproc_base: u64,
    workdir: PathBuf,
}

/// Work-directory numbers, process-wide: several executors in one process (a training and an
/// evaluation pool, parallel tests) must never share `spear-sandbox-<pid>-<n>`, or one
/// call's cleanup deletes another's `main.py`.
static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// Sandbox uids in use, process-wide (`RLIMIT_NPROC` counts per uid, so two executors must
/// not hand out the same one at once).
static UIDS_IN_USE: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

impl std::fmt::Debug for LocalExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalExecutor")
            .field("isolation", &self.isolation)
            .field("python", &self.env.python)
            .finish()
    }
}

impl LocalExecutor {
    /// An executor with the given isolation; `Bwrap` fails with a message
    /// telling to install bubblewrap when it is missing.
    pub fn new(env: PythonEnv, isolation: Isolation) -> Result<LocalExecutor, LocalSetupError> {
        match isolation {
            Isolation::RlimitsOnly => Ok(LocalExecutor::rlimits_only(env)),
            Isolation::Bwrap => {
                let bwrap = bwrap_available().map_err(LocalSetupError::BwrapMissing)?;
                let is_root = running_as_root();
                let setpriv = if is_root {
                    let p = Path::new("/usr/bin/setpriv");
                    if !p.is_file() {
                        return Err(LocalSetupError::SetprivMissing(p.display().to_string()));
                    }
                    Some(p.to_path_buf())
                } else {
                    None
                };
                let exec = LocalExecutor::build(env, Isolation::Bwrap, Some(bwrap), setpriv);
                exec.self_test()?;
                Ok(exec)
            }
        }
    }

    /// The rlimits-only mode (chosen by name only); logs a loud warning.
    pub fn rlimits_only(env: PythonEnv) -> LocalExecutor {
        tracing::warn!(
            "the math sandbox runs WITHOUT isolation (rlimits only): \
             model-written code can read and write your files and reach the network{}. \
             Install bubblewrap (`apt-get install bubblewrap`) for the real sandbox.",
            if running_as_root() {
                ", and as root the process limit is not enforced"
            } else {
                ""
            }
        );
        LocalExecutor::build(env, Isolation::RlimitsOnly, None, None)
    }

    fn build(
        env: PythonEnv,
        isolation: Isolation,
        bwrap: Option<PathBuf>,
        setpriv: Option<PathBuf>,
    ) -> LocalExecutor {
        let is_root = running_as_root();
        let workdir = std::env::temp_dir();
        LocalExecutor {
            env,
            isolation,
            bwrap,
            setpriv,
            is_root,
            nproc_base: if is_root { 0 } else { count_own_processes() },
            workdir,
        }
    }

    /// The safe default: bubblewrap, or an error (never a silent fallback to rlimits only;
    /// that mode exists only when asked for by name, [`LocalExecutor::rlimits_only`]).
    pub fn default_isolated(env: PythonEnv) -> Result<LocalExecutor, LocalSetupError> {
        LocalExecutor::new(env, Isolation::Bwrap)
    }

    /// Checks that bubblewrap is installed, before the (slow) Python environment is prepared.
    pub fn check_bwrap_installed() -> Result<(), LocalSetupError> {
        bwrap_available()
            .map(|_| ())
            .map_err(LocalSetupError::BwrapMissing)
    }

    /// Run `print(1)` once so that a bubblewrap that cannot create its
    /// namespaces here (e.g. a container without user-namespace support)
    /// fails at construction with its own message, not on every tool call.
    fn self_test(&self) -> Result<(), LocalSetupError> {
        let limits = Limits {
            timeout: Duration::from_secs(60),
            ..Limits::default()
        };
        let r = self.run("print(1)", &limits);
        if r.status == RunStatus::Finished && r.stdout == "1\n" {
            Ok(())
        } else {
            Err(LocalSetupError::BwrapBroken(format!(
                "{:?}, return code {:?}: {}",
                r.status,
                r.return_code,
                r.stderr.trim()
            )))
        }
    }

    /// The isolation in use.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// The interpreter.
    pub fn python_env(&self) -> &PythonEnv {
        &self.env
    }

    fn take_uid(&self) -> Option<u32> {
        let mut set = UIDS_IN_USE.lock().ok()?;
        let uid = (UID_BASE..UID_BASE + UID_SLOTS).find(|u| !set.contains(u))?;
        set.insert(uid);
        Some(uid)
    }

    fn give_uid(&self, uid: u32) {
        if let Ok(mut set) = UIDS_IN_USE.lock() {
            set.remove(&uid);
        }
    }

    fn bwrap_args(&self, dir: &Path, uid: Option<u32>, limits: &Limits) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
        push(&[
            "--die-with-parent",
            "--new-session",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
        ]);
        if !self.is_root {
            push(&["--unshare-user"]);
        }
        push(&["--ro-bind", "/usr", "/usr"]);
        for top in ["/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin"] {
            let p = Path::new(top);
            if let Ok(target) = fs::read_link(p) {
                push(&["--symlink", &target.to_string_lossy(), top]);
            } else if p.is_dir() {
                push(&["--ro-bind", top, top]);
            }
        }
        let tmp_bytes = (limits.tmp_mb * 1024 * 1024).to_string();
        let main = dir.join("main.py");
        push(&[
            "--dev", "/dev", "--proc", "/proc", "--perms", "1777", "--size", &tmp_bytes, "--tmpfs",
            "/tmp",
        ]);
        // After the tmpfs, so that an interpreter under /tmp stays visible.
        let mut made: BTreeSet<PathBuf> = BTreeSet::new();
        for ro in &self.env.ro_paths {
            if ro.starts_with("/usr") || !ro.is_absolute() {
                continue;
            }
            let ancestors: Vec<&Path> = ro.ancestors().skip(1).collect();
            for anc in ancestors.into_iter().rev() {
                if anc == Path::new("/") || anc == Path::new("/tmp") || made.contains(anc) {
                    continue;
                }
                made.insert(anc.to_path_buf());
                push(&["--perms", "0755", "--dir", &anc.to_string_lossy()]);
            }
            let s = ro.to_string_lossy();
            push(&["--ro-bind", &s, &s]);
        }
        push(&[
            "--ro-bind",
            &main.to_string_lossy(),
            "/tmp/main.py",
            // the root and /dev become read-only (only /tmp is writable)
            "--remount-ro",
            "/dev",
            "--remount-ro",
            "/",
            "--chdir",
            "/tmp",
            "--clearenv",
        ]);
        for (k, v) in sandbox_env() {
            push(&["--setenv", k, v]);
        }
        if let (Some(uid), Some(setpriv)) = (uid, &self.setpriv) {
            let u = format!("--reuid={uid}");
            let g = format!("--regid={uid}");
            push(&[
                "--cap-add",
                "CAP_SETUID",
                "--cap-add",
                "CAP_SETGID",
                &setpriv.to_string_lossy(),
                &u,
                &g,
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
            ]);
        }
        push(&[&self.env.python.to_string_lossy(), "/tmp/main.py"]);
        a
    }
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Environment of the program: nothing inherited from the caller.
fn sandbox_env() -> [(&'static str, &'static str); 8] {
    [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("HOME", "/tmp"),
        ("LANG", "C.UTF-8"),
        ("PYTHONDONTWRITEBYTECODE", "1"),
        ("OPENBLAS_NUM_THREADS", "1"),
        ("OMP_NUM_THREADS", "1"),
        ("MKL_NUM_THREADS", "1"),
        ("MPLCONFIGDIR", "/tmp"),
    ]
}

fn count_own_processes() -> u64 {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let Ok(rd) = fs::read_dir("/proc") else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        let Ok(status) = fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let threads = status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(1);
        let owner = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u32>().ok());
        if owner == Some(uid) {
            n += threads;
        }
    }
    n
}

/// Read a pipe to the end, keeping at most `cap` bytes.
fn drain(mut r: impl Read, cap: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    kept
}

impl Executor for LocalExecutor {
    fn name(&self) -> String {
        match self.isolation {
            Isolation::Bwrap => "bwrap".into(),
            Isolation::RlimitsOnly => "rlimits".into(),
        }
    }

    fn run(&self, code: &str, limits: &Limits) -> RunResult {
        let start = Instant::now();
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let dir = self
            .workdir
            .join(format!("spear-sandbox-{}-{n}", std::process::id()));
        if let Err(e) = prepare_dir(&dir, code) {
            return RunResult::error(format!("sandbox: cannot write {}: {e}", dir.display()));
        }
        let uid = match (self.isolation, self.is_root) {
            (Isolation::Bwrap, true) => match self.take_uid() {
                Some(u) => Some(u),
                None => {
                    let _ = fs::remove_dir_all(&dir);
                    return RunResult::error("sandbox: no free sandbox uid");
                }
            },
            _ => None,
        };
        let mut cmd = match (self.isolation, &self.bwrap) {
            (Isolation::Bwrap, Some(bwrap)) => {
                let mut c = Command::new(bwrap);
                // bwrap's own process (PID 1 of the sandbox, whose /proc/1/environ
                // the program could read) must not carry the caller's secrets.
                c.env_clear();
                c.args(self.bwrap_args(&dir, uid, limits));
                c
            }
            _ => {
                let mut c = Command::new(&self.env.python);
                c.arg("main.py").current_dir(&dir).env_clear();
                for (k, v) in sandbox_env() {
                    c.env(
                        k,
                        if v == "/tmp" {
                            dir.as_os_str()
                        } else {
                            v.as_ref()
                        },
                    );
                }
                c
            }
        };
        let secs = limits.timeout.as_secs_f64().ceil() as u64 + 1;
        let mem = limits.memory_mb.saturating_mul(1024 * 1024);
        let nproc = limits.max_processes + self.nproc_base;
        let fsize = limits.max_file_mb.saturating_mul(1024 * 1024);
        let nofile = limits.max_open_files;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: the closure only calls async-signal-safe functions (setsid,
        // setrlimit) and touches no allocator or lock.
        unsafe {
            cmd.pre_exec(move || {
                libc::setsid();
                let set = |res, v: u64| {
                    let r = libc::rlimit {
                        rlim_cur: v as libc::rlim_t,
                        rlim_max: v as libc::rlim_t,
                    };
                    libc::setrlimit(res, &r)
                };
                set(libc::RLIMIT_CPU, secs);
                set(libc::RLIMIT_AS, mem);
                set(libc::RLIMIT_NPROC, nproc);
                set(libc::RLIMIT_FSIZE, fsize);
                set(libc::RLIMIT_NOFILE, nofile);
                set(libc::RLIMIT_CORE, 0);
                Ok(())
            });
        }
        let result = run_child(cmd, limits, self.isolation == Isolation::Bwrap, start);
        if let Some(u) = uid {
            self.give_uid(u);
        }
        let _ = fs::remove_dir_all(&dir);
        result
    }
}

fn prepare_dir(dir: &Path, code: &str) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    let main = dir.join("main.py");
    fs::write(&main, code)?;
    fs::set_permissions(&main, fs::Permissions::from_mode(0o644))
}

fn run_child(mut cmd: Command, limits: &Limits, bwrap: bool, start: Instant) -> RunResult {
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return RunResult::error(format!("sandbox: cannot start the interpreter: {e}")),
    };
    let pid = child.id() as libc::pid_t;
    let cap = limits.max_output_bytes;
    let (otx, orx) = mpsc::channel();
    let (etx, erx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            let _ = otx.send(drain(out, cap));
        });
    }
    if let Some(err) = child.stderr.take() {
        std::thread::spawn(move || {
            let _ = etx.send(drain(err, cap));
        });
    }
    let (wtx, wrx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = wtx.send(child.wait());
    });
    let mut timed_out = false;
    let status = match wrx.recv_timeout(limits.timeout) {
        Ok(s) => s,
        Err(_) => {
            timed_out = true;
            // SAFETY: kill on our own child's process group.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
                libc::kill(pid, libc::SIGKILL);
            }
            match wrx.recv_timeout(Duration::from_secs(5)) {
                Ok(s) => s,
                Err(_) => return RunResult::error("sandbox: the process could not be reaped"),
            }
        }
    };
    // Kill anything left in the group (children of an exited program).
    // SAFETY: as above; ESRCH when the group is gone is harmless.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
    let grace = Duration::from_secs(2);
    let stdout = orx.recv_timeout(grace).unwrap_or_default();
    let stderr = erx.recv_timeout(grace).unwrap_or_default();
    let execution_time = start.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    let status = match status {
        Ok(s) => s,
        Err(e) => return RunResult::error(format!("sandbox: wait failed: {e}")),
    };
    let xcpu = status.signal() == Some(libc::SIGXCPU)
        || (bwrap && status.code() == Some(128 + libc::SIGXCPU));
    if timed_out || xcpu {
        return RunResult {
            status: RunStatus::TimeLimitExceeded,
            return_code: None,
            stdout,
            stderr,
            execution_time,
        };
    }
    if bwrap && status.code() == Some(1) && stderr.starts_with("bwrap: ") {
        return RunResult::error(format!("sandbox: {}", stderr.trim()));
    }
    let return_code = status.code().or_else(|| status.signal().map(|s| -s));
    RunResult {
        status: RunStatus::Finished,
        return_code,
        stdout,
        stderr,
        execution_time,
    }
}
