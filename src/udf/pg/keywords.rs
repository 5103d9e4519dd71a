//! `pg_get_keywords()`: the key words of the SQL this server parses, with
//! PostgreSQL's categories for those PostgreSQL reserves (`R`) and the
//! others unreserved (`U`). DBeaver and other editors read it to
//! highlight and to know what needs quoting.

use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::plan_err;
use datafusion::datasource::MemTable;
use datafusion::error::Result;
use datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;

use super::identifiers::is_reserved;

#[derive(Debug)]
pub struct PgGetKeywords;

impl TableFunctionImpl for PgGetKeywords {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        if !args.exprs().is_empty() {
            return plan_err!("pg_get_keywords() takes no arguments");
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("word", DataType::Utf8, false),
            Field::new("catcode", DataType::Utf8, false),
            Field::new("barelabel", DataType::Boolean, false),
            Field::new("catdesc", DataType::Utf8, false),
            Field::new("baredesc", DataType::Utf8, false),
        ]));
        let words: Vec<String> = ALL_KEYWORDS.iter().map(|k| k.to_lowercase()).collect();
        let reserved: Vec<bool> = words.iter().map(|w| is_reserved(w)).collect();
        let pick = |r: &bool, yes: &'static str, no: &'static str| if *r { yes } else { no };
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(words.clone())),
                Arc::new(StringArray::from_iter_values(
                    reserved.iter().map(|r| pick(r, "R", "U")),
                )),
                Arc::new(BooleanArray::from(
                    reserved.iter().map(|r| !r).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from_iter_values(
                    reserved.iter().map(|r| pick(r, "reserved", "unreserved")),
                )),
                Arc::new(StringArray::from_iter_values(
                    reserved
                        .iter()
                        .map(|r| pick(r, "requires AS", "can be bare label")),
                )),
            ],
        )?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }
}
