//! Checking the Yahoo pipeline's committed output: reading it the way a
//! `read_committed` consumer of a correct broker would, comparing it with the
//! counts computed sequentially from the input, and counting dead letters.

use std::collections::BTreeMap;
use std::path::Path;

use weir_runtime::JobError;

use super::yahoo::{Campaigns, SOURCE_HEADER, WindowCount, WindowCounts, parse_event, reference};

/// What [`verify`] found: the committed output against the expected counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Expected (campaign, window) counts.
    pub expected: usize,
    /// Committed output records.
    pub committed: usize,
    /// Expected windows with no committed count.
    pub missing: Vec<(String, u64)>,
    /// Windows committed more than once, with how often.
    pub duplicated: Vec<((String, u64), usize)>,
    /// Windows committed with a wrong count: (window, committed, expected),
    /// including windows that should not exist (expected 0).
    pub wrong: Vec<((String, u64), u64, u64)>,
    /// Output records that are not window counts.
    pub unreadable: Vec<String>,
    /// Records held back by transactions still open.
    pub open: usize,
    /// Malformed input records, and how many of them reached the dead-letter
    /// topic exactly once (`None`: not checked).
    pub dead_letters: Option<(usize, usize)>,
}

impl Verdict {
    /// Whether the output is exactly the expected one.
    pub fn ok(&self) -> bool {
        self.missing.is_empty()
            && self.duplicated.is_empty()
            && self.wrong.is_empty()
            && self.unreadable.is_empty()
            && self.dead_letters.is_none_or(|(want, once)| want == once)
    }

    /// A report, one finding per line (at most 5 examples of each).
    pub fn describe(&self) -> String {
        let mut lines = vec![format!(
            "{} windows expected, {} output records committed ({} held back by open transactions)",
            self.expected, self.committed, self.open
        )];
        let mut list = |what: &str, items: Vec<String>| {
            if !items.is_empty() {
                let total = items.len();
                let shown: Vec<String> = items.into_iter().take(5).collect();
                lines.push(format!("{total} {what}: {}", shown.join("; ")));
            }
        };
        list(
            "missing",
            self.missing
                .iter()
                .map(|(c, s)| format!("{c}@{s}"))
                .collect(),
        );
        list(
            "duplicated",
            self.duplicated
                .iter()
                .map(|((c, s), n)| format!("{c}@{s} x{n}"))
                .collect(),
        );
        list(
            "wrong",
            self.wrong
                .iter()
                .map(|((c, s), got, want)| format!("{c}@{s}: {got} committed, {want} expected"))
                .collect(),
        );
        list("unreadable", self.unreadable.clone());
        if let Some((want, once)) = self.dead_letters {
            lines.push(format!(
                "{want} malformed input records, {once} of them in the dead-letter topic exactly once"
            ));
        }
        lines.join("\n")
    }
}

/// Reads the committed output of `topic` (transaction markers applied) and
/// compares it with `expected` counts per (campaign, window start).
pub fn verify(brokers: &str, topic: &str, expected: &WindowCounts) -> Result<Verdict, JobError> {
    let log = crate::kafka::wire::read_committed(brokers, topic)?;
    let mut seen: BTreeMap<(String, u64), Vec<u64>> = BTreeMap::new();
    let mut verdict = Verdict {
        expected: expected.len(),
        committed: log.records.len(),
        open: log.open,
        ..Verdict::default()
    };
    for record in &log.records {
        let value = record.value.as_deref().unwrap_or_default();
        match serde_json::from_slice::<WindowCount>(value) {
            Ok(w) => seen
                .entry((w.campaign_id, w.window_start))
                .or_default()
                .push(w.count),
            Err(e) => verdict.unreadable.push(format!(
                "{topic}/{}@{}: {e}",
                record.partition, record.offset
            )),
        }
    }
    for (window, counts) in &seen {
        if counts.len() > 1 {
            verdict.duplicated.push((window.clone(), counts.len()));
        }
        let want = expected.get(window).copied().unwrap_or(0);
        if counts.iter().any(|&c| c != want) {
            verdict.wrong.push((window.clone(), counts[0], want));
        }
    }
    verdict.missing = expected
        .keys()
        .filter(|w| !seen.contains_key(*w))
        .cloned()
        .collect();
    Ok(verdict)
}

/// Expected counts from JSON lines `{"campaign_id", "window_start", "count"}`
/// (the output's own format).
pub fn load_expected(path: &Path) -> Result<WindowCounts, JobError> {
    let text = std::fs::read_to_string(path).map_err(|e| JobError::io(path, &e))?;
    let mut expected = WindowCounts::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let w: WindowCount = serde_json::from_str(line).map_err(|e| JobError::Malformed {
            position: format!("{}:{}", path.display(), n + 1),
            message: e.to_string(),
            remedy: None,
        })?;
        expected.insert((w.campaign_id, w.window_start), w.count);
    }
    Ok(expected)
}

/// The expected output of the pipeline over everything in `input_topic`, and
/// the positions (`topic/partition@offset`) of its malformed records.
pub fn expected_from_input(
    brokers: &str,
    input_topic: &str,
    campaigns: &Campaigns,
) -> Result<(WindowCounts, Vec<String>), JobError> {
    let log = crate::kafka::wire::read_committed(brokers, input_topic)?;
    let values = log
        .records
        .iter()
        .map(|r| r.value.as_deref().unwrap_or_default());
    let (expected, _) = reference(values, campaigns);
    let malformed = log
        .records
        .iter()
        .filter(|r| parse_event(r.value.as_deref().unwrap_or_default()).is_err())
        .map(|r| format!("{input_topic}/{}@{}", r.partition, r.offset))
        .collect();
    Ok((expected, malformed))
}

/// How many of the `malformed` positions are in the committed dead-letter
/// topic exactly once (matched by their source-position header).
pub fn dead_letters_once(
    brokers: &str,
    dead_topic: &str,
    malformed: &[String],
) -> Result<usize, JobError> {
    let log = crate::kafka::wire::read_committed(brokers, dead_topic)?;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for record in &log.records {
        for (key, value) in &record.headers {
            if key == SOURCE_HEADER
                && let Some(v) = value
            {
                *seen
                    .entry(String::from_utf8_lossy(v).into_owned())
                    .or_insert(0) += 1;
            }
        }
    }
    Ok(malformed
        .iter()
        .filter(|p| seen.get(*p) == Some(&1))
        .count())
}
