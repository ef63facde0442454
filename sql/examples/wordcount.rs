//! `weir wordcount` written with the Table API: the lines of text files,
//! split into words by a function of the program's own (weir's tokenizer:
//! runs of Unicode alphanumerics, lowercased), unnested to one row per word,
//! counted per word. Output lines are `word<TAB>count`, as the job's.
//!
//! `cargo run -p weir-sql --example wordcount -- FILE_OR_DIR`

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray, ListBuilder, StringBuilder};
use arrow::datatypes::{DataType, Field};
use datafusion_common::{Result as DfResult, exec_err};
use datafusion_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use weir_sql::table::Context;
use weir_sql::table::prelude::*;

/// `words(line)`: the words of a line, as a list of strings.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Words {
    signature: Signature,
}

impl Words {
    fn udf() -> ScalarUDF {
        ScalarUDF::from(Words {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for Words {
    fn name(&self) -> &str {
        "words"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(
            DataType::Utf8,
            true,
        ))))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [line] = args.args.as_slice() else {
            return exec_err!("words takes one argument");
        };
        let lines = line.to_array(args.number_rows)?;
        let Some(lines) = lines.as_string_opt::<i32>() else {
            return exec_err!("words takes text, not {}", lines.data_type());
        };
        let mut words = ListBuilder::new(StringBuilder::new());
        for i in 0..lines.len() {
            if lines.is_null(i) {
                words.append_null();
                continue;
            }
            weir_runtime::text::for_each_word(lines.value(i), |w| words.values().append_value(w));
            words.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(words.finish())))
    }
}

/// The count of every word of the text at `input`, as `word<TAB>count`.
pub fn word_count(input: &Path, config: timely::Config) -> Result<Vec<String>, weir_sql::SqlError> {
    let mut ctx = Context::default();
    let words = Words::udf();
    ctx.register_udf(words.clone());
    let output = ctx
        .lines("text", input)?
        .select(vec![words.call(vec![col("line")]).alias("word")])?
        .unnest("word")?
        .aggregate(vec![col("word")], vec![count(lit(1)).alias("count")])?
        .collect(config)?;
    let mut lines = Vec::new();
    for batch in &output.batches {
        let words = batch.column(0).as_string::<i32>();
        let counts = batch
            .column(1)
            .as_primitive::<arrow::datatypes::Int64Type>();
        for i in 0..batch.num_rows() {
            lines.push(format!("{}\t{}", words.value(i), counts.value(i)));
        }
    }
    Ok(lines)
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input] = args.as_slice() else {
        return Err("usage: wordcount FILE_OR_DIR".into());
    };
    for line in word_count(Path::new(input), timely::Config::process(2))? {
        println!("{line}");
    }
    Ok(())
}
