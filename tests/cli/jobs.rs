use std::io::Write;

use crate::support::{parts, run, run_two_processes, stderr};

/// Runs a job with `--output` at -w 1, -w 3 and on two processes; all three must
/// write the same records.
fn same_output_everywhere(args: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let out = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let one = out("w1");
    let three = out("w3");
    let procs = out("n2");
    for (target, flags) in [(&one, vec!["-w", "1"]), (&three, vec!["-w", "3"])] {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--output", target.as_str()]);
        a.extend(flags);
        let o = run(&a);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let mut a: Vec<&str> = args.to_vec();
    a.extend(["--output", procs.as_str()]);
    let (p0, p1) = run_two_processes(dir.path(), &a);
    assert!(
        stderr(&p0).contains("records out"),
        "process 0 prints the summary"
    );
    assert!(
        !stderr(&p1).contains("records out"),
        "process 1 stays quiet"
    );
    let reference = parts(dir.path().join("w1").as_path(), 1);
    assert!(!reference.is_empty());
    assert_eq!(parts(dir.path().join("w3").as_path(), 3), reference);
    assert_eq!(parts(dir.path().join("n2").as_path(), 2), reference);
    reference
}

#[test]
fn wordcount_gives_identical_output_on_1_and_3_threads_and_2_processes() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("text.txt");
    let o = run(&[
        "gen",
        "text",
        "--lines",
        "20000",
        "--seed",
        "5",
        "--output",
        text.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = same_output_everywhere(&["wordcount", "--input", text.to_str().unwrap()]);
    // every line is word<TAB>count and the counts add up to the words of the file
    let total: u64 = lines
        .iter()
        .map(|l| l.split_once('\t').unwrap().1.parse::<u64>().unwrap())
        .sum();
    let content = std::fs::read_to_string(&text).unwrap();
    let words = content
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .count() as u64;
    assert_eq!(total, words);
}

#[test]
fn wordcount_default_input_says_what_it_used_and_shows_few_records() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "b a\nA b B\n").unwrap();
    let o = run(&["wordcount", "--input", input.to_str().unwrap()]);
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout), "a\t2\nb\t3\n");
    let o = run(&[
        "wordcount",
        "--show",
        "1",
        "--input",
        input.to_str().unwrap(),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "",
        "2 records > --show 1"
    );
    assert!(stderr(&o).contains("2 records out"), "{}", stderr(&o));
    let o = run(&["wordcount", "--show", "0"]);
    assert!(o.status.success());
    assert!(
        stderr(&o).contains("input generated text (seed 42"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn join_gives_identical_output_on_1_and_3_threads_and_2_processes_with_every_strategy() {
    let dir = tempfile::tempdir().unwrap();
    let left = dir.path().join("left.csv");
    let right = dir.path().join("right.tsv");
    for (path, rows, seed) in [(&left, "3000", "1"), (&right, "2000", "2")] {
        let o = run(&[
            "gen",
            "table",
            "--rows",
            rows,
            "--keys",
            "500",
            "--seed",
            seed,
            "--output",
            path.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let mut first = None;
    for ship in ["broadcast", "repartition"] {
        for local in ["hash", "sort-merge"] {
            for budget in ["1G", "20K"] {
                let args = [
                    "join",
                    "--left",
                    left.to_str().unwrap(),
                    "--right",
                    right.to_str().unwrap(),
                    "--left-key",
                    "0",
                    "--right-key",
                    "0",
                    "--ship",
                    ship,
                    "--local",
                    local,
                    "--memory-budget",
                    budget,
                ];
                if budget == "20K" {
                    let o = run(&[&args[..], &["--show", "0"]].concat());
                    assert!(stderr(&o).contains("B to disk"), "{}", stderr(&o));
                }
                let lines = same_output_everywhere(&args);
                // left row (4 fields) then right row (4 fields), keys equal
                for l in &lines {
                    let f: Vec<&str> = l.split('\t').collect();
                    assert_eq!(f.len(), 8, "{l}");
                    assert_eq!(f[0], f[4], "{l}");
                }
                match &first {
                    None => first = Some(lines),
                    Some(f) => assert_eq!(&lines, f, "{ship}+{local} {budget}"),
                }
            }
        }
    }
}

#[test]
fn join_auto_says_what_it_picked() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.csv");
    let big = dir.path().join("big.csv");
    std::fs::write(&small, "k1,x\n").unwrap();
    let mut f = std::fs::File::create(&big).unwrap();
    for i in 0..5000 {
        writeln!(f, "k{},{i}", i % 3).unwrap();
    }
    let o = run(&[
        "join",
        "--left",
        big.to_str().unwrap(),
        "--right",
        small.to_str().unwrap(),
        "--left-key",
        "0",
        "--right-key",
        "0",
        "-w",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("join: ship broadcast (auto), local hash (auto); build side right"),
        "{err}"
    );
    assert!(err.contains("1667 records out"), "{err}");
}

#[test]
fn gen_is_deterministic_per_seed() {
    let a = run(&["gen", "table", "--rows", "50", "--seed", "3"]);
    let b = run(&["gen", "table", "--rows", "50", "--seed", "3"]);
    let c = run(&["gen", "table", "--rows", "50", "--seed", "4"]);
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
    assert_ne!(a.stdout, c.stdout);
    assert_eq!(String::from_utf8_lossy(&a.stdout).lines().count(), 50);
}

#[test]
fn demo_runs_every_job_and_prints_the_table() {
    let o = run(&["demo", "-w", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("job"), "{table}");
    for job in ["wordcount", "join"] {
        let row = lines.iter().find(|l| l.starts_with(job)).unwrap();
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert!(cols[1].parse::<u64>().unwrap() > 0, "{row}");
        assert!(cols[2].parse::<u64>().unwrap() > 0, "{row}");
        assert_eq!(cols[5], "2", "{row}");
    }
    // iterations, convergence, test RMSE, and the streaming kill and restore
    let result = |job: &str| {
        let row = lines.iter().find(|l| l.starts_with(job)).unwrap();
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[5], "2", "{row}");
        cols[6..].join(" ")
    };
    assert!(result("pagerank").starts_with("converged:"), "{table}");
    assert!(result("cc").starts_with("fixed point after"), "{table}");
    assert!(result("als").starts_with("test RMSE 0."), "{table}");
    assert!(result("cocoa").starts_with("duality gap"), "{table}");
    assert!(result("stream").contains("exactly once"), "{table}");
    assert!(
        table.contains("killed with kill -9 after checkpoint")
            && table.contains("--restore latest")
            && table.contains("stream: exactly once:"),
        "{table}"
    );
}

/// The demo runs on every core unless timely's flags say otherwise.
#[test]
fn demo_runs_on_every_core_by_default() {
    let o = run(&["demo"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let cores = std::thread::available_parallelism().unwrap().get();
    let table = String::from_utf8_lossy(&o.stdout);
    let rows: Vec<&str> = table
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(rows.len(), 7, "{table}");
    for row in rows {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[5], cores.to_string(), "{row}");
    }
}
