//! What one read of a watched file gives: its whole lines as one string.

use serde::{Deserialize, Serialize};
use weir_progress::route::key_hash;

/// Whole lines that one read took from one file, as the file has them: one
/// allocation for them all, which a decoder of many lines at once (Arrow's
/// JSON decoder) takes as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Lines {
    /// The file's name, in the watched directory.
    pub file: String,
    /// The byte of the file at which `text` starts.
    pub start: u64,
    /// The lines, each ended by `\n` (or `\r\n`; the file's last line may
    /// end without one).
    pub text: String,
    /// With event time, the event time of each line that is not blank, in
    /// order; otherwise empty.
    pub times: Vec<u64>,
    /// How many lines `text` holds (with event time, those not blank).
    pub count: usize,
}

impl Lines {
    /// The lines, without their line ends.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.text.lines()
    }

    /// The lines that are not blank, each with its byte in the file.
    pub fn lines_at(&self) -> impl Iterator<Item = (u64, &str)> {
        let mut at = self.start;
        self.text.split_inclusive('\n').filter_map(move |raw| {
            let start = at;
            at += raw.len() as u64;
            (!raw.trim().is_empty()).then_some((start, raw.trim_end_matches(['\n', '\r'])))
        })
    }

    /// A number that spreads the reads of a file over workers.
    pub fn route(&self) -> u64 {
        key_hash(&(self.file.as_str(), self.start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_know_their_bytes() {
        let lines = Lines {
            file: "f".into(),
            start: 10,
            text: "ab\r\n\n cd\nlast".into(),
            times: Vec::new(),
            count: 4,
        };
        assert_eq!(lines.lines().collect::<Vec<_>>(), ["ab", "", " cd", "last"]);
        let at: Vec<(u64, &str)> = lines.lines_at().collect();
        assert_eq!(at, [(10, "ab"), (15, " cd"), (19, "last")]);
    }
}
