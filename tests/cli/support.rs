use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

/// Runs weir with `args`; returns its output.
pub fn run(args: &[&str]) -> Output {
    weir().args(args).stdin(Stdio::null()).output().unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The sorted lines of all part files in `dir`, checking there is one per worker.
pub fn parts(dir: &Path, workers: usize) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let want: Vec<String> = (0..workers).map(|i| format!("part-{i:05}")).collect();
    assert_eq!(names, want, "{}", dir.display());
    let mut lines: Vec<String> = names
        .iter()
        .flat_map(|n| {
            std::fs::read_to_string(dir.join(n))
                .unwrap()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    lines
}

/// A hostfile for `n` processes on free loopback ports.
pub fn hostfile(dir: &Path, n: usize) -> PathBuf {
    let ports: Vec<String> = (0..n)
        .map(|_| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            format!("127.0.0.1:{}", l.local_addr().unwrap().port())
        })
        .collect();
    let path = dir.join("hosts.txt");
    std::fs::write(&path, ports.join("\n") + "\n").unwrap();
    path
}

/// Runs `args` as a cluster of two processes (one worker each) over TCP; both must
/// succeed. Returns the outputs of process 0 and 1.
pub fn run_two_processes(dir: &Path, args: &[&str]) -> (Output, Output) {
    let (a, b) = two_processes(dir, args, None);
    assert!(a.status.success(), "process 0: {}", stderr(&a));
    assert!(b.status.success(), "process 1: {}", stderr(&b));
    (a, b)
}

/// Runs `args` as a cluster of two processes (one worker each), `input`
/// piped to process 0's standard input; returns both outputs, whatever
/// their exit codes.
pub fn two_processes(dir: &Path, args: &[&str], input: Option<&str>) -> (Output, Output) {
    let hosts = hostfile(dir, 2);
    let spawn = |p: &str, piped: bool| {
        weir()
            .args(args)
            .args(["-n", "2", "-p", p, "-h"])
            .arg(&hosts)
            .stdin(if piped { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (mut a, b) = (spawn("0", input.is_some()), spawn("1", false));
    if let (Some(text), Some(mut stdin)) = (input, a.stdin.take()) {
        stdin.write_all(text.as_bytes()).unwrap();
    }
    (a.wait_with_output().unwrap(), b.wait_with_output().unwrap())
}

/// Runs `args` in one process with `input` on its standard input.
pub fn run_with_input(args: &[&str], input: &str) -> Output {
    let mut child = weir()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Whether `dir` holds a complete checkpoint (a manifest).
pub fn has_manifest(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.path().join("MANIFEST.json").exists())
    })
}

/// Waits (at most `within`) for a complete checkpoint in `ckpt`, pauses
/// below `pause_below_ms`, SIGKILLs one of `children` at random and checks
/// that none of them succeeds. Returns the time-based seed of these choices,
/// for the caller's messages.
pub fn kill_one_after_a_checkpoint(
    children: &mut [std::process::Child],
    ckpt: &Path,
    within: std::time::Duration,
    pause_below_ms: u64,
) -> u64 {
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let deadline = std::time::Instant::now() + within;
    while !has_manifest(ckpt) {
        assert!(
            std::time::Instant::now() < deadline,
            "no loop checkpoint within {within:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(
        rng.random_range(0..pause_below_ms),
    ));
    let victim = rng.random_range(0..children.len());
    children[victim].kill().unwrap();
    for child in children.iter_mut() {
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "seed {seed}: a process finished despite the kill"
        );
    }
    seed
}

/// The newest complete checkpoint in `dir` (one with its manifest).
pub fn latest_checkpoint(dir: &Path) -> Option<std::ffi::OsString> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.path().join("MANIFEST.json").exists())
        .map(|e| e.file_name())
        .max()
}
