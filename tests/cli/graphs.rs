//! The graph jobs end to end: crash mid-loop (an injected abort, and a real
//! SIGKILL of one of two processes) and resume from the loop checkpoint with
//! the uninterrupted result; bad input.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::support::{hostfile, kill_one_after_a_checkpoint, parts, path, run, stderr, weir};

/// `node<TAB>value` lines of a run's part files.
fn values(dir: &Path, workers: usize) -> BTreeMap<u32, f64> {
    parts(dir, workers)
        .iter()
        .map(|line| {
            let (node, value) = line.split_once('\t').unwrap();
            (node.parse().unwrap(), value.parse().unwrap())
        })
        .collect()
}

fn assert_same(got: &BTreeMap<u32, f64>, want: &BTreeMap<u32, f64>, tolerance: f64) {
    assert_eq!(got.len(), want.len());
    for (node, value) in want {
        assert!(
            (got[node] - value).abs() <= tolerance,
            "node {node}: {} resumed, {value} uninterrupted",
            got[node]
        );
    }
}

#[test]
fn pagerank_aborted_mid_loop_resumes_on_3_workers_with_the_uninterrupted_ranks() {
    let root = tempfile::tempdir().unwrap();
    let graph = ["--rmat", "11", "--edge-factor", "8", "--seed", "4"];
    let (whole, first, second, ckpt) = (
        root.path().join("whole"),
        root.path().join("first"),
        root.path().join("second"),
        root.path().join("ckpt"),
    );
    let common = |out: &Path| {
        let mut args: Vec<String> = graph.iter().map(|s| s.to_string()).collect();
        args.extend(["--iterations", "30", "--show", "0", "--output", path(out)].map(String::from));
        args
    };
    let out = run(&[
        &["pagerank", "-w", "2"][..],
        &common(&whole)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    ]
    .concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("30 iterations"), "{}", stderr(&out));

    let checkpointed = |out: &Path, extra: &[&str], workers: &str| {
        let mut c = weir();
        c.arg("pagerank").args(["-w", workers]).args(common(out));
        c.args(["--checkpoint-dir", path(&ckpt), "--checkpoint-every", "4"]);
        c.args(extra);
        c
    };
    let crashed = checkpointed(&first, &[], "2")
        .env("WEIR_FAULT_ABORT_AFTER_ITERATION", "13")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!crashed.status.success());
    assert!(
        stderr(&crashed).contains("aborting after iteration 13"),
        "{}",
        stderr(&crashed)
    );

    let resumed = checkpointed(&second, &["--restore", "latest"], "3")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = stderr(&resumed);
    assert!(resumed.status.success(), "{err}");
    // checkpoints after iterations 3, 7 and 11 were possible before the crash
    assert!(err.contains("30 iterations (resumed at iteration"), "{err}");
    assert!(
        !err.contains("iteration 0:"),
        "the resumed run starts mid-loop: {err}"
    );
    assert_same(&values(&second, 3), &values(&whole, 2), 1e-12);
}

#[test]
fn cc_survives_a_kill_9_of_either_process_mid_loop() {
    let root = tempfile::tempdir().unwrap();
    // a long path (ids 0..=1500 in a chain) needs many iterations
    let edges = root.path().join("chain.txt");
    let text: String = (0..1500u32).map(|i| format!("{} {}\n", i + 1, i)).collect();
    std::fs::write(&edges, text).unwrap();
    let whole = root.path().join("whole");
    let cc = |out: &Path| {
        let mut c = weir();
        c.args([
            "cc",
            "--edges",
            path(&edges),
            "--show",
            "0",
            "--output",
            path(out),
        ]);
        c
    };
    let out = cc(&whole).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let ckpt = root.path().join("ckpt");
    let start = |out: &Path, restore: bool| {
        let hosts = hostfile(root.path(), 2);
        let spawn = |p: &str| {
            let mut c = cc(out);
            c.args(["--checkpoint-dir", path(&ckpt), "--checkpoint-every", "50"]);
            if restore {
                c.args(["--restore", "latest"]);
            }
            c.args(["-n", "2", "-p", p, "-h"]).arg(&hosts);
            c.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            c.spawn().unwrap()
        };
        let first = spawn("0");
        [first, spawn("1")]
    };
    let mut children = start(&root.path().join("first"), false);
    // wait for a complete loop checkpoint, then kill a random process
    let seed = kill_one_after_a_checkpoint(&mut children, &ckpt, Duration::from_secs(60), 30);
    let second = root.path().join("second");
    let children = start(&second, true);
    for (p, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "seed {seed}, process {p}: {}",
            stderr(&out)
        );
    }
    assert_eq!(values(&second, 2), values(&whole, 1), "seed {seed}");
}

#[test]
fn graph_jobs_reject_bad_input_with_the_position() {
    let root = tempfile::tempdir().unwrap();
    let edges = root.path().join("edges.txt");
    std::fs::write(&edges, "0 1\n1 2 3 4\n").unwrap();
    let out = run(&["pagerank", "--edges", path(&edges)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("edges.txt:2"), "{}", stderr(&out));
    // regression: cc iterated over the edges that parsed before it failed
    for job in ["cc", "pagerank"] {
        for workers in ["1", "2"] {
            let out = run(&[job, "--edges", path(&edges), "-w", workers]);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{job} -w {workers}: {err}");
            assert!(err.contains("edges.txt:2"), "{job} -w {workers}: {err}");
            assert!(
                !err.contains("iteration 0"),
                "{job} -w {workers} iterated: {err}"
            );
        }
    }

    let out = run(&["cc", "--edges", path(&root.path().join("missing.txt"))]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("missing.txt"), "{}", stderr(&out));

    let out = run(&["bfs", "--rmat", "8"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--source"), "{}", stderr(&out));

    let out = run(&["bfs", "--rmat", "8", "--source", "100000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not in the graph"),
        "{}",
        stderr(&out)
    );

    let out = run(&["pagerank", "--rmat", "8", "--iterations", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--iterations must be at least 1"),
        "{}",
        stderr(&out)
    );

    let out = run(&["pagerank", "--rmat", "40"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("scale"), "{}", stderr(&out));

    let ckpt = root.path().join("ckpt");
    let args = [
        "cc",
        "--rmat",
        "8",
        "--checkpoint-dir",
        path(&ckpt),
        "--checkpoint-every",
        "1",
    ];
    assert!(run(&args).status.success());
    let out = run(&args);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--restore latest"),
        "{}",
        stderr(&out)
    );
    // the checkpoints hold 32-bit ids: a resume with 64-bit ids is refused
    let out = run(&[&args[..], &["--restore", "latest", "--wide-ids"]].concat());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("32-bit node ids: run without --wide-ids"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn ids_beyond_32_bits_need_wide_ids_and_then_run() {
    let root = tempfile::tempdir().unwrap();
    let edges = root.path().join("wide.txt");
    let big = 1u64 << 40;
    std::fs::write(
        &edges,
        format!("{big} {}\n{} {}\n7 {big}\n", big + 1, big + 1, big + 2),
    )
    .unwrap();
    let out = run(&["cc", "--edges", path(&edges)]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("wide.txt:1") && err.contains("--wide-ids"),
        "{err}"
    );
    let out = run(&["bfs", "--source", &big.to_string(), "--rmat", "8"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--wide-ids"), "{}", stderr(&out));

    let dir = root.path().join("out");
    let out = run(&[
        "cc",
        "--edges",
        path(&edges),
        "--wide-ids",
        "-w",
        "2",
        "--output",
        path(&dir),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let want: Vec<String> = [big, big + 1, big + 2]
        .iter()
        .map(|v| format!("{v}\t7"))
        .chain(["7\t7".to_string()])
        .collect();
    let mut want = want;
    want.sort();
    assert_eq!(parts(&dir, 2), want);
}
