//! Spawning a real process (the rampart binary, or any program) for CLI, exit-code and signal
//! tests: a config file in a temp dir, captured output, waits with deadlines, signals via kill(1).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub fn rampart_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rampart"))
}

/// A port that was free a moment ago (racy; only for tests of the real binary).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The path of an external tool the tests need. When it is missing: panics if
/// `RAMPART_TEST_STRICT` is set (as `.ci/test` does), else says the test is skipped.
pub fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("RAMPART_TEST_STRICT").is_none(),
            "{name} is not installed (.ci/test installs it)"
        );
        eprintln!("SKIPPED: {name} is not installed (.ci/test installs it)");
    }
    found
}

/// Poll until `addr` accepts a TCP connection; false when `within` passes first.
pub async fn wait_for_port(addr: SocketAddr, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if TcpStream::connect(addr).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// What to run: program, args, env, and an optional config file written to a temp dir
/// (passed as `-c FILE` after the args). The temp dir is also the working directory.
pub struct Cmd {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    config: Option<String>,
    files: Vec<(String, String)>,
}

/// A running process; killed when dropped.
pub struct Process {
    child: Child,
    readers: Vec<JoinHandle<()>>,
    dir: TempDir,
    output: Arc<Mutex<String>>,
    lines: watch::Sender<usize>,
    status: Option<ExitStatus>,
}

/// A process that has exited.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// stdout and stderr interleaved, line by line.
    pub output: String,
}

/// `rampart ARGS`; `RAMPART_CONFIG` is removed from its environment.
pub fn rampart(args: &[&str]) -> Cmd {
    Cmd::new(rampart_bin(), args)
}

// === impl Cmd ===

impl Cmd {
    pub fn new(program: impl Into<PathBuf>, args: &[&str]) -> Self {
        Self {
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
            config: None,
            files: Vec::new(),
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Write `yaml` to `<tempdir>/rampart.yaml` and pass `-c <that path>`.
    pub fn config(mut self, yaml: &str) -> Self {
        self.config = Some(yaml.into());
        self
    }

    /// Write `text` to `<tempdir>/<name>` (the working directory) before spawning, e.g. a
    /// `rampart.yaml` found there without `-c`.
    pub fn file(mut self, name: &str, text: &str) -> Self {
        self.files.push((name.into(), text.into()));
        self
    }

    pub fn spawn(self) -> Process {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in &self.files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .current_dir(dir.path())
            .env_remove("RAMPART_CONFIG")
            .envs(self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(yaml) = &self.config {
            let path = dir.path().join("rampart.yaml");
            std::fs::write(&path, yaml).unwrap();
            command.arg("-c").arg(path);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.program.display()));
        let output = Arc::new(Mutex::new(String::new()));
        let lines = watch::Sender::new(0);
        let readers = vec![
            capture(child.stdout.take().unwrap(), output.clone(), lines.clone()),
            capture(child.stderr.take().unwrap(), output.clone(), lines.clone()),
        ];
        Process {
            child,
            readers,
            dir,
            output,
            lines,
            status: None,
        }
    }

    /// Run to completion (killed after `within`) and return its status and output.
    pub async fn run(self, within: Duration) -> Finished {
        let mut process = self.spawn();
        let status = process.wait_exit(within).await;
        // The pipes reach EOF once the process is gone; let the readers drain them.
        let readers = std::mem::take(&mut process.readers);
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            for reader in readers {
                let _ = reader.await;
            }
        })
        .await;
        Finished {
            status,
            output: process.output(),
        }
    }
}

fn capture(
    pipe: impl AsyncRead + Unpin + Send + 'static,
    output: Arc<Mutex<String>>,
    lines: watch::Sender<usize>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            let mut out = output.lock().unwrap();
            out.push_str(&line);
            out.push('\n');
            lines.send_modify(|n| *n += 1);
        }
    })
}

// === impl Process ===

impl Process {
    pub fn pid(&self) -> u32 {
        self.child.id().expect("process still running")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("rampart.yaml")
    }

    /// Replace the config file (for reload tests).
    pub fn write_config(&self, yaml: &str) {
        std::fs::write(self.config_path(), yaml).unwrap();
    }

    /// True while the process has not exited (reaps it when it has).
    pub fn is_running(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().unwrap();
        }
        self.status.is_none()
    }

    /// What each open file descriptor refers to (`socket:[123]`, `pipe:[45]`...), from
    /// `/proc/PID/fd`.
    pub fn open_fds(&self) -> Vec<String> {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("/proc/PID/fd")
            .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
            .map(|target| target.display().to_string())
            .collect()
    }

    /// TCP connections the process holds open (any state but LISTEN): its descriptors'
    /// socket inodes looked up in `/proc/net/tcp` and `tcp6`.
    pub fn tcp_connections(&self) -> usize {
        let inodes: Vec<String> = self
            .open_fds()
            .iter()
            .filter_map(|fd| fd.strip_prefix("socket:[")?.strip_suffix(']'))
            .map(str::to_owned)
            .collect();
        let mut count = 0;
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let text = std::fs::read_to_string(table).unwrap_or_default();
            for line in text.lines().skip(1) {
                let fields: Vec<&str> = line.split_whitespace().collect();
                const LISTEN: &str = "0A";
                if fields.len() > 9 && fields[3] != LISTEN && inodes.iter().any(|i| i == fields[9])
                {
                    count += 1;
                }
            }
        }
        count
    }

    /// Resident set size in KiB, from `VmRSS` in `/proc/PID/status`.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmRSS line")
    }

    /// stdout and stderr so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Send a signal by name: "TERM", "INT", "HUP", "KILL".
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Wait until a line containing `needle` has been printed; returns that line.
    /// Panics with the output so far when `within` passes first.
    pub async fn wait_for_line(&self, needle: &str, within: Duration) -> String {
        let find = || {
            self.output()
                .lines()
                .find(|l| l.contains(needle))
                .map(str::to_owned)
        };
        let mut rx = self.lines.subscribe();
        let found = tokio::time::timeout(within, async {
            loop {
                if let Some(line) = find() {
                    return Some(line);
                }
                rx.changed().await.ok()?;
            }
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            _ => panic!(
                "no line with {needle:?} within {within:?}; output:\n{}",
                self.output()
            ),
        }
    }

    /// Wait for the process to exit; it is killed (and that reported) after `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        let status = match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => {
                self.child.kill().await.unwrap();
                panic!("still running after {within:?}; output:\n{}", self.output());
            }
        };
        self.status = Some(status);
        status
    }
}
