//! `--plot`: every iterative job draws its convergence curve.

use std::path::Path;

use crate::support::{run, stderr};

/// The width and height in a PNG's header, after checking its signature.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    assert_eq!(&bytes[12..16], b"IHDR");
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

/// Runs `args` with `--plot file`, which must succeed and say so.
fn plotted(args: &[&str], file: &Path) -> String {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--plot", file.to_str().unwrap()]);
    let o = run(&all);
    let err = stderr(&o);
    assert!(o.status.success(), "{args:?}: {err}");
    assert!(err.contains("plotted to"), "{err}");
    err
}

/// Lines `job: iteration N: ...` (or `round N`) reported on stderr.
fn reported(err: &str, unit: &str) -> usize {
    err.lines()
        .filter(|l| l.split(": ").nth(1).is_some_and(|s| s.starts_with(unit)))
        .count()
}

#[test]
fn svg_plots_have_a_point_per_reported_iteration() {
    let dir = tempfile::tempdir().unwrap();
    let pagerank = dir.path().join("pagerank.svg");
    let err = plotted(&["pagerank", "--rmat", "8", "--iterations", "7"], &pagerank);
    assert_eq!(reported(&err, "iteration "), 7, "{err}");
    let svg = std::fs::read_to_string(&pagerank).unwrap();
    assert_eq!(svg.matches("<circle").count(), 7, "{svg}");
    assert!(svg.contains("L1 change"));

    let cocoa = dir.path().join("cocoa.svg");
    let err = plotted(&["cocoa", "--rounds", "4", "-w", "2"], &cocoa);
    assert_eq!(reported(&err, "round "), 4, "{err}");
    let svg = std::fs::read_to_string(&cocoa).unwrap();
    assert_eq!(svg.matches("<circle").count(), 4);
    assert!(svg.contains("duality gap"));

    // ALS draws two curves, train and test RMSE.
    let als = dir.path().join("als.svg");
    let err = plotted(&["als", "--iterations", "3", "--rank", "4"], &als);
    assert_eq!(reported(&err, "iteration "), 3, "{err}");
    let svg = std::fs::read_to_string(&als).unwrap();
    assert_eq!(svg.matches("<circle").count(), 6);
    assert!(svg.contains("train RMSE") && svg.contains("test RMSE"));
}

#[test]
fn png_plots_are_written_by_graph_jobs() {
    let dir = tempfile::tempdir().unwrap();
    for job in ["cc", "bfs"] {
        let file = dir.path().join(format!("{job}.png"));
        let mut args = vec![job, "--rmat", "8", "-w", "2"];
        if job == "bfs" {
            args.extend(["--source", "0"]);
        }
        plotted(&args, &file);
        assert_eq!(png_size(&file), (900, 560), "{job}");
    }
}
