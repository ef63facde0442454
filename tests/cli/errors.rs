use crate::support::{run, stderr};

/// Runs weir, expecting `code` and exactly this first line on stderr, and no panic.
fn fails(args: &[&str], code: i32, first_line: &str) {
    let o = run(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
    assert_eq!(err.lines().next(), Some(first_line), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn usage_errors_exit_2_with_one_clear_line() {
    fails(
        &["wordcount", "--bogus"],
        2,
        "weir: wordcount: Unrecognized option: 'bogus'",
    );
    fails(&["frobnicate"], 2, "weir: unknown job 'frobnicate'");
    fails(
        &["wordcount", "-w", "zero"],
        2,
        "weir: invalid value 'zero' for --threads: invalid digit found in string",
    );
    fails(
        &["wordcount", "-w", "0"],
        2,
        "weir: -w/--threads must be at least 1",
    );
    fails(
        &["wordcount", "-n", "2", "-p", "2"],
        2,
        "weir: -p/--process is 2, but must be less than -n/--processes (2)",
    );
    fails(
        &["cc", "--plot", "curve.jpg"],
        2,
        "weir: --plot curve.jpg: the file must end in .png or .svg",
    );
    fails(
        &["als", "--plot", "no/such/dir/curve.png"],
        2,
        "weir: --plot no/such/dir/curve.png: directory no/such/dir does not exist",
    );
    fails(
        &["wordcount", "extra"],
        2,
        "weir: wordcount: unexpected argument 'extra'",
    );
    fails(
        &["wordcount", "--show", "-3"],
        2,
        "weir: invalid value '-3' for --show: invalid digit found in string",
    );
    fails(
        &["join", "--left", "a.csv"],
        2,
        "weir: --left needs --right",
    );
    fails(
        &[
            "join",
            "--left",
            "a.csv",
            "--right",
            "b.csv",
            "--right-key",
            "0",
        ],
        2,
        "weir: missing required option --left-key",
    );
    fails(
        &["join", "--ship", "sideways"],
        2,
        "weir: invalid value 'sideways' for --ship: expected auto, broadcast or repartition",
    );
    fails(
        &["join", "--local", "nested-loop"],
        2,
        "weir: invalid value 'nested-loop' for --local: expected auto, hash or sort-merge",
    );
    fails(
        &["join", "--memory-budget", "12X"],
        2,
        "weir: invalid value '12X' for --memory-budget: unknown unit (use K, M, G or T)",
    );
    fails(
        &["join", "--delimiter", "ab"],
        2,
        "weir: invalid value 'ab' for --delimiter: expected one ASCII character or 'tab'",
    );
    fails(
        &["gen", "poem"],
        2,
        "weir: gen: unknown kind 'poem': expected text, table, tpch or nexmark",
    );
    fails(
        &["gen", "text", "--keys", "3"],
        2,
        "weir: gen text: --keys does not apply to text",
    );
}

#[test]
fn dash_h_is_the_hostfile_and_help_is_long_only() {
    fails(
        &["wordcount", "-h"],
        2,
        "weir: wordcount: Argument to option 'h' missing",
    );
    let o = run(&["wordcount", "--help"]);
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "Usage: weir wordcount",
        "--input",
        "--output",
        "-w, --threads",
        "-h, --hostfile",
        "--progress-mode",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
    for job in ["join", "gen", "demo"] {
        let o = run(&[job, "--help"]);
        assert!(o.status.success(), "{job}");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains(&format!("Usage: weir {job}")),
            "{job}"
        );
    }
    let o = run(&["--help"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("wordcount"));
}

/// `weir --help` once left `cocoa` out of its list of jobs.
#[test]
fn help_lists_every_job_cocoa_included() {
    let o = run(&["--help"]);
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout).into_owned();
    let listed: Vec<&str> = help
        .lines()
        .skip_while(|l| *l != "Jobs:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let jobs = [
        "demo",
        "wordcount",
        "join",
        "stream",
        "pagerank",
        "cc",
        "bfs",
        "als",
        "recommend",
        "cocoa",
        "sql",
        "gen",
    ];
    assert_eq!(listed, jobs, "{help}");
    for job in jobs {
        let o = run(&[job, "--help"]);
        assert!(o.status.success(), "{job}: {}", stderr(&o));
    }
}

#[test]
fn runtime_errors_exit_1_naming_the_input_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.txt");
    fails(
        &["wordcount", "--input", missing.to_str().unwrap()],
        1,
        &format!(
            "weir: {}: No such file or directory (os error 2)",
            missing.display()
        ),
    );
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "k1,a\nk2,b\nk3\n").unwrap();
    let good = dir.path().join("good.csv");
    std::fs::write(&good, "k1,x\n").unwrap();
    let o = run(&[
        "join",
        "--left",
        good.to_str().unwrap(),
        "--right",
        bad.to_str().unwrap(),
        "--left-key",
        "0",
        "--right-key",
        "1",
        "-w",
        "2",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.lines().any(|l| l
            == format!(
                "weir: {}:1: the row has 2 fields, but the key is column 1 (0-based)",
                bad.display()
            )
            || l == format!(
                "weir: {}:3: the row has 1 field, but the key is column 1 (0-based)",
                bad.display()
            )),
        "{err}"
    );
    // regression: an unterminated quote was taken as a field to the line's end
    let quote = dir.path().join("quote.csv");
    std::fs::write(&quote, "k1,a\nk2,\"open\n").unwrap();
    let o = run(&[
        "join",
        "--left",
        good.to_str().unwrap(),
        "--right",
        quote.to_str().unwrap(),
        "--left-key",
        "0",
        "--right-key",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let want = format!(
        "weir: {}:2: a quoted field is not closed (a row is one line)",
        quote.display()
    );
    assert_eq!(err.lines().last(), Some(want.as_str()), "{err}");
    assert!(o.stdout.is_empty(), "no output before the error");
    let hosts = dir.path().join("nohosts.txt");
    fails(
        &["wordcount", "-n", "2", "-h", hosts.to_str().unwrap()],
        1,
        &format!(
            "weir: hostfile {}: No such file or directory (os error 2)",
            hosts.display()
        ),
    );
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("part-00000"), "old").unwrap();
    fails(
        &["wordcount", "--output", out.to_str().unwrap()],
        1,
        &format!(
            "weir: {}: output directory already holds results (part-00000); remove them or choose another directory",
            out.display()
        ),
    );
}

#[test]
fn stream_wordcount_bad_flags_and_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (input, out, ck) = (
        format!("dir:{d}/in"),
        format!("dir:{d}/out"),
        format!("{d}/ck"),
    );
    let base = [
        "stream",
        "wordcount",
        "--sink",
        &out,
        "--checkpoint-dir",
        &ck,
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let call = |args: Vec<String>, code: i32, line: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&args, code, line);
    };
    call(
        with(&["--source", "kafka:topic"]),
        2,
        "weir: --source kafka: needs --brokers HOST:PORT",
    );
    call(
        with(&["--source", "queue:topic"]),
        2,
        "weir: invalid value 'queue:topic' for --source: expected dir:PATH or kafka:TOPIC",
    );
    // nothing listens on port 1: the broker is unreachable, named, after retries
    let unreachable = with(&[
        "--source",
        "kafka:lines",
        "--brokers",
        "127.0.0.1:1",
        "--broker-timeout",
        "1s",
    ]);
    let args: Vec<&str> = unreachable.iter().map(String::as_str).collect();
    let out = run(&args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("retrying"), "each retry is logged: {err}");
    assert!(
        err.lines().last().is_some_and(|l| l
            .starts_with("weir: kafka broker 127.0.0.1:1 unreachable")
            && l.contains("gave up after")),
        "{err}"
    );
    call(with(&[]), 2, "weir: missing required option --source");
    call(
        with(&["--source", &input, "--checkpoint-interval", "soon"]),
        2,
        "weir: invalid value 'soon' for --checkpoint-interval: expected number at 0",
    );
    call(
        with(&["--source", &input, "--restore", "yesterday"]),
        2,
        "weir: invalid value 'yesterday' for --restore: expected 'latest' or a checkpoint directory chk-<epoch>",
    );
    call(
        with(&["--source", &input]),
        1,
        &format!("weir: {d}/in: not a directory (the source watches a directory for new files)"),
    );
    std::fs::create_dir(dir.path().join("in")).unwrap();
    // a store that never held a complete checkpoint (a run killed before its
    // first): restore latest starts fresh and says so in one line
    std::fs::create_dir_all(dir.path().join("ck/chk-00000000000000000002")).unwrap();
    let args = with(&[
        "--source",
        &input,
        "--restore",
        "latest",
        "--stop-when-idle",
        "300ms",
    ]);
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let want = format!(
        "weir: restore latest: {d}/ck/ holds no complete checkpoint (the run before stopped \
         before its first): starting from the beginning (1 unfinished checkpoint directory discarded)"
    );
    assert!(err.lines().any(|l| l == want), "{err}");
    // a checkpoint whose keys another hash routed is refused, naming both
    let manifests: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path().join("ck"))
        .unwrap()
        .map(|e| e.unwrap().path().join("MANIFEST.json"))
        .filter(|m| m.exists())
        .collect();
    assert!(
        !manifests.is_empty(),
        "the fresh run left a complete checkpoint"
    );
    let newest = manifests.iter().max().unwrap();
    let text = std::fs::read_to_string(newest).unwrap();
    let other = text.replace("xxh3-64/bincode-1", "siphash-1-3/std");
    assert_ne!(text, other);
    std::fs::write(newest, other).unwrap();
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(
        err.lines().last(),
        Some(
            format!(
                "weir: checkpoint: {}: written by a weir that routes keys by siphash-1-3/std, \
                 this one routes by xxh3-64/bincode-1: restore it with the weir that wrote it",
                newest.display()
            )
            .as_str()
        ),
        "{err}"
    );
    // a store whose complete checkpoints are all damaged stays an error
    let mut damaged = 0;
    for entry in std::fs::read_dir(dir.path().join("ck")).unwrap() {
        let manifest = entry.unwrap().path().join("MANIFEST.json");
        if manifest.exists() {
            std::fs::write(&manifest, b"{").unwrap();
            damaged += 1;
        }
    }
    assert!(damaged > 0, "the fresh run left a complete checkpoint");
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!(
            "weir: checkpoint: no valid checkpoint to restore in {d}/ck/ (rejected: skipping checkpoint chk-"
        )) && last.contains("unreadable manifest"),
        "no silent fresh start over damaged checkpoints: {err}"
    );
    fails(
        &["stream", "grep"],
        2,
        "weir: stream: unknown job 'grep' (jobs: wordcount, produce, yahoo, verify)",
    );
}
