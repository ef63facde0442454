//! Splitting a join input's lines into fields: CSV with quoting, or tabs.

use super::Row;

/// Splits delimited lines into fields; CSV quoting is honoured except for
/// tab-separated input, which has none.
pub struct FieldSplitter {
    delimiter: u8,
    csv: csv_core::Reader,
    input: Vec<u8>,
    output: Vec<u8>,
    ends: Vec<usize>,
}

impl FieldSplitter {
    /// A splitter for `delimiter`.
    pub fn new(delimiter: u8) -> Self {
        FieldSplitter {
            delimiter,
            csv: csv_core::ReaderBuilder::new().delimiter(delimiter).build(),
            input: Vec::new(),
            output: Vec::new(),
            ends: Vec::new(),
        }
    }

    /// Parses `line` into (key field, fields joined by tabs); `Ok(None)` for an
    /// empty line.
    pub fn row(&mut self, line: &str, key: usize) -> Result<Option<Row>, String> {
        if line.is_empty() {
            return Ok(None);
        }
        let fields: Vec<&str> = if self.delimiter == b'\t' {
            line.split('\t').collect()
        } else {
            self.input.clear();
            self.input.extend_from_slice(line.as_bytes());
            self.input.push(b'\n');
            self.output.resize(self.input.len(), 0);
            self.ends.resize(self.input.len() + 1, 0);
            self.csv.reset();
            let (result, _, _, n) =
                self.csv
                    .read_record(&self.input, &mut self.output, &mut self.ends);
            match result {
                csv_core::ReadRecordResult::Record => {}
                // the line (and its newline) is all the input: a quote that
                // is still open swallowed the end of the row
                csv_core::ReadRecordResult::InputEmpty => {
                    return Err("a quoted field is not closed (a row is one line)".into());
                }
                other => return Err(format!("the row could not be split ({other:?})")),
            }
            let mut start = 0;
            let mut fields = Vec::with_capacity(n);
            for &end in &self.ends[..n] {
                let field = std::str::from_utf8(&self.output[start..end])
                    .map_err(|_| "a quoted field is not valid UTF-8".to_string())?;
                fields.push(field);
                start = end;
            }
            fields
        };
        let Some(key_field) = fields.get(key) else {
            return Err(format!(
                "the row has {} field{}, but the key is column {key} (0-based)",
                fields.len(),
                if fields.len() == 1 { "" } else { "s" }
            ));
        };
        Ok(Some((key_field.to_string(), fields.join("\t"))))
    }
}

/// The delimiter for a path: tab for `.tsv`/`.tab`/`.txt`, comma otherwise.
pub fn delimiter_for(path: &std::path::Path) -> u8 {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("tsv" | "tab" | "txt") => b'\t',
        _ => b',',
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_tsv_fields() {
        let mut csv = FieldSplitter::new(b',');
        assert_eq!(
            csv.row(r#"a,"b, with comma","say ""hi""""#, 1).unwrap(),
            Some((
                "b, with comma".into(),
                "a\tb, with comma\tsay \"hi\"".into()
            ))
        );
        assert_eq!(csv.row("", 0).unwrap(), None);
        // regression: csv-core's result was ignored, so an unterminated quote
        // was taken as a field running to the end of the line
        assert_eq!(
            csv.row(r#"1,"open,2"#, 0).unwrap_err(),
            "a quoted field is not closed (a row is one line)"
        );
        assert_eq!(
            csv.row("2,after", 0).unwrap(),
            Some(("2".into(), "2\tafter".into())),
            "the splitter is reset after a bad row"
        );
        let mut tsv = FieldSplitter::new(b'\t');
        assert_eq!(
            tsv.row("x\t\"y\"\tz", 2).unwrap(),
            Some(("z".into(), "x\t\"y\"\tz".into()))
        );
        assert_eq!(
            tsv.row("only", 1).unwrap_err(),
            "the row has 1 field, but the key is column 1 (0-based)"
        );
    }
}
