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
    let hosts = hostfile(dir, 2);
    let spawn = |p: &str| {
        weir()
            .args(args)
            .args(["-n", "2", "-p", p, "-h"])
            .arg(&hosts)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("0"), spawn("1"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "process 0: {}", stderr(&a));
    assert!(b.status.success(), "process 1: {}", stderr(&b));
    (a, b)
}
