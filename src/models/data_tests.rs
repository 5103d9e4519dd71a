//! Data tests, dbt's way: `profiledb test` runs queries that return the
//! rows breaking an expectation; a test passes when there are none.
//!
//! - **Generic tests** are declared on columns in schema files (`*.yml`
//!   beside the models, dbt's format): `not_null`, `unique`,
//!   `accepted_values` (`values: [...]`) and `relationships` (`to:
//!   ref('model')`, `field: column`). Each takes dbt's `config:` with
//!   `severity` (`error`, or `warn`: reported, does not fail the command)
//!   and `where` (tests only the rows the condition keeps).
//! - **Singular tests** are `.sql` files in `<models>/tests/`: any query
//!   (Jinja `ref`/`source` allowed) whose rows are failures.
//!
//! Each test runs as SQL through an engine session, as a client's query
//! would, so it sees exactly what clients see.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::Array;
use datafusion::arrow::util::display::array_value_to_string;
use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};

use super::template;
use crate::engine::Engine;
use crate::error::{Error, Result};

/// A data test, compiled to a query returning failing rows.
#[derive(Debug, Clone)]
pub struct DataTest {
    /// dbt's name for it, e.g. `not_null_profiles_profile_id`.
    pub name: String,
    /// The models it reads (for `--select`).
    pub models: BTreeSet<String>,
    /// Where it was declared.
    pub path: String,
    pub severity: Severity,
    /// The query whose rows are failures.
    pub sql: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warn,
}

/// The outcome of one test.
#[derive(Debug, Clone)]
pub enum TestOutcome {
    Pass,
    /// Failing rows: how many, and the first few as text.
    Fail {
        failures: u64,
        sample: Vec<String>,
    },
    /// The test could not run (a missing column, bad SQL).
    Error(String),
}

#[derive(Debug, Clone)]
pub struct TestResult {
    pub test: DataTest,
    pub outcome: TestOutcome,
    pub seconds: f64,
}

impl TestResult {
    /// Whether the result fails the command (a failure of severity error,
    /// or a test that could not run).
    pub fn fails(&self) -> bool {
        match self.outcome {
            TestOutcome::Pass => false,
            TestOutcome::Fail { .. } => self.test.severity == Severity::Error,
            TestOutcome::Error(_) => true,
        }
    }
}

/// The shipped models' schema file.
const DEFAULT_SCHEMA_FILE: (&str, &str) = (
    "builtin:sql/schema.yml",
    include_str!("../../sql/schema.yml"),
);

/// The tests of the shipped models.
pub fn default_tests() -> Result<Vec<DataTest>> {
    from_schema_file(DEFAULT_SCHEMA_FILE.1, DEFAULT_SCHEMA_FILE.0)
}

/// The tests of a models folder: its schema files' and `tests/*.sql`.
pub fn load_dir(dir: &Path) -> Result<Vec<DataTest>> {
    let mut tests = Vec::new();
    for path in super::files_with_extension(dir, &["yml", "yaml"])? {
        let text = read(&path)?;
        tests.extend(from_schema_file(&text, &path.display().to_string())?);
    }
    let singular = dir.join("tests");
    if singular.is_dir() {
        for path in super::files_with_extension(&singular, &["sql"])? {
            tests.push(singular_test(&path)?);
        }
    }
    Ok(tests)
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))
}

/// A singular test: a query file whose rows are failures.
fn singular_test(path: &Path) -> Result<DataTest> {
    let display = path.display().to_string();
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned();
    let text = read(path)?;
    let rendered = template::render(&text, false).map_err(|message| Error::Model {
        model: name.clone(),
        path: display.clone(),
        message,
    })?;
    let sql = rendered.sql.trim().trim_end_matches(';').to_owned();
    Ok(DataTest {
        models: referenced_names(&sql),
        name,
        path: display,
        severity: Severity::Error,
        sql,
    })
}

/// The lowercase words of a query: a cheap over-approximation of the
/// relations it reads, enough to decide whether `--select` includes it.
fn referenced_names(sql: &str) -> BTreeSet<String> {
    sql.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

#[derive(Debug, Deserialize)]
struct SchemaFile {
    #[serde(default)]
    models: Vec<ModelSpec>,
    #[serde(default)]
    seeds: Vec<ModelSpec>,
}

#[derive(Debug, Deserialize)]
struct ModelSpec {
    name: String,
    #[serde(default)]
    columns: Vec<ColumnSpec>,
}

#[derive(Debug, Deserialize)]
struct ColumnSpec {
    name: String,
    #[serde(default)]
    tests: Vec<Value>,
    /// dbt 1.8's name for `tests`.
    #[serde(default)]
    data_tests: Vec<Value>,
}

/// The generic tests declared in a schema file.
pub fn from_schema_file(text: &str, path: &str) -> Result<Vec<DataTest>> {
    let bad = |message: String| Error::Config(format!("{path}: {message}"));
    let file: SchemaFile = serde_yaml_ng::from_str(text).map_err(|e| bad(e.to_string()))?;
    let mut tests = Vec::new();
    for model in file.models.iter().chain(&file.seeds) {
        for column in &model.columns {
            for spec in column.tests.iter().chain(&column.data_tests) {
                let test = generic_test(&model.name, &column.name, spec, path).map_err(|m| {
                    bad(format!("model {}, column {}: {m}", model.name, column.name))
                })?;
                tests.push(test);
            }
        }
    }
    Ok(tests)
}

/// One column test: `not_null`, or `{accepted_values: {values: [...]}}`.
fn generic_test(
    model: &str,
    column: &str,
    spec: &Value,
    path: &str,
) -> std::result::Result<DataTest, String> {
    let (kind, args) = match spec {
        Value::String(kind) => (kind.clone(), Mapping::new()),
        Value::Mapping(m) if m.len() == 1 => {
            let (k, v) = m.iter().next().ok_or("an empty test")?;
            let kind = k.as_str().ok_or("a test's name must be text")?.to_owned();
            let args = match v {
                Value::Mapping(a) => a.clone(),
                Value::Null => Mapping::new(),
                _ => return Err(format!("{kind}: its arguments must be a mapping")),
            };
            (kind, args)
        }
        _ => return Err(format!("not a test: {spec:?}")),
    };
    // dbt 1.10 puts arguments under `arguments:`, earlier versions beside
    // `config:`; both are read.
    let mut arguments = args.clone();
    if let Some(Value::Mapping(nested)) = args.get("arguments") {
        arguments.extend(nested.clone());
    }
    let config = match args.get("config") {
        Some(Value::Mapping(c)) => c.clone(),
        _ => Mapping::new(),
    };
    let setting =
        |name: &str| -> Option<&Value> { config.get(name).or_else(|| arguments.get(name)) };
    let severity = match setting("severity").and_then(Value::as_str) {
        None => Severity::Error,
        Some(s) if s.eq_ignore_ascii_case("error") => Severity::Error,
        Some(s) if s.eq_ignore_ascii_case("warn") => Severity::Warn,
        Some(s) => return Err(format!("severity '{s}' is not error or warn")),
    };
    let relation = match setting("where").and_then(Value::as_str) {
        Some(condition) => format!("(SELECT * FROM {} WHERE {condition})", ident(model)),
        None => ident(model),
    };
    let c = ident(column);
    let mut models = BTreeSet::from([model.to_owned()]);
    let (name, sql) = match kind.as_str() {
        "not_null" => (
            format!("not_null_{model}_{column}"),
            format!("SELECT * FROM {relation} AS t WHERE {c} IS NULL"),
        ),
        "unique" => (
            format!("unique_{model}_{column}"),
            format!(
                "SELECT {c} AS unique_field, count(*) AS n_records FROM {relation} AS t \
                 WHERE {c} IS NOT NULL GROUP BY {c} HAVING count(*) > 1"
            ),
        ),
        "accepted_values" => {
            let Some(Value::Sequence(values)) = arguments.get("values") else {
                return Err("accepted_values needs `values: [...]`".into());
            };
            let quote = arguments
                .get("quote")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let list = values
                .iter()
                .map(|v| literal(v, quote))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            if list.is_empty() {
                return Err("accepted_values needs at least one value".into());
            }
            let names: Vec<String> = list
                .iter()
                .map(|v| {
                    v.trim_matches('\'')
                        .replace(|c: char| !c.is_alphanumeric(), "_")
                })
                .collect();
            (
                short_name(format!(
                    "accepted_values_{model}_{column}__{}",
                    names.join("__")
                )),
                format!(
                    "SELECT {c} AS value_field, count(*) AS n_records FROM {relation} AS t \
                     WHERE {c} IS NOT NULL AND {c} NOT IN ({}) GROUP BY {c}",
                    list.join(", ")
                ),
            )
        }
        "relationships" => {
            let to = arguments
                .get("to")
                .and_then(Value::as_str)
                .ok_or("relationships needs `to: ref('model')`")?;
            let field = arguments
                .get("field")
                .and_then(Value::as_str)
                .ok_or("relationships needs `field: column`")?;
            let parent = template::render(&format!("{{{{ {to} }}}}"), false)
                .map(|r| r.sql)
                .or_else(|_| template::render(to, false).map(|r| r.sql))
                .map_err(|e| format!("to: {e}"))?;
            let parent = parent.trim().to_owned();
            models.insert(parent.clone());
            let f = ident(field);
            (
                format!("relationships_{model}_{column}__{field}__{parent}"),
                format!(
                    "SELECT child.{c} AS from_field FROM {relation} AS child \
                     LEFT JOIN {} AS parent ON child.{c} = parent.{f} \
                     WHERE child.{c} IS NOT NULL AND parent.{f} IS NULL",
                    ident(&parent)
                ),
            )
        }
        other => {
            return Err(format!(
                "unknown test '{other}' (not_null, unique, accepted_values, relationships; \
                 or a singular test in tests/*.sql)"
            ));
        }
    };
    Ok(DataTest {
        name,
        models,
        path: path.to_owned(),
        severity,
        sql,
    })
}

/// A test name of at most 64 characters: a longer one is cut and ends
/// with a digest of the whole, so two tests keep two names (as dbt does).
fn short_name(name: String) -> String {
    if name.len() <= 64 {
        return name;
    }
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    let mut cut = 55;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{h:08x}", &name[..cut])
}

/// A double-quoted identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A YAML scalar as a SQL literal (text quoted unless `quote: false`).
fn literal(value: &Value, quote: bool) -> std::result::Result<String, String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => return Err(format!("accepted value {other:?} is not a scalar")),
    };
    Ok(if quote {
        format!("'{}'", text.replace('\'', "''"))
    } else {
        text
    })
}

/// How many failing rows a test shows.
const SAMPLE: usize = 5;

/// Runs the tests, in order, reporting each as it finishes.
pub async fn run(
    engine: &Arc<Engine>,
    tests: Vec<DataTest>,
    mut on_result: impl FnMut(&TestResult),
) -> Vec<TestResult> {
    let mut results = Vec::with_capacity(tests.len());
    for test in tests {
        let started = Instant::now();
        let outcome = match run_one(engine, &test).await {
            Ok((0, _)) => TestOutcome::Pass,
            Ok((failures, sample)) => TestOutcome::Fail { failures, sample },
            Err(e) => TestOutcome::Error(e.to_string()),
        };
        let result = TestResult {
            test,
            outcome,
            seconds: started.elapsed().as_secs_f64(),
        };
        on_result(&result);
        results.push(result);
    }
    results
}

async fn run_one(engine: &Arc<Engine>, test: &DataTest) -> Result<(u64, Vec<String>)> {
    let sql = &test.sql;
    let count = engine
        .query(&format!("SELECT count(*) FROM ({sql}) AS failures"))
        .await?;
    let failures = count
        .first()
        .filter(|b| b.num_rows() > 0)
        .map(|b| array_value_to_string(b.column(0), 0))
        .transpose()?
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if failures == 0 {
        return Ok((0, Vec::new()));
    }
    let rows = engine
        .query(&format!("SELECT * FROM ({sql}) AS failures LIMIT {SAMPLE}"))
        .await?;
    let mut sample = Vec::new();
    for batch in &rows {
        let names: Vec<&str> = batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        for r in 0..batch.num_rows() {
            let cells: Vec<String> = batch
                .columns()
                .iter()
                .zip(&names)
                .map(|(c, n)| {
                    let v = if c.is_null(r) {
                        "NULL".to_owned()
                    } else {
                        array_value_to_string(c, r).unwrap_or_default()
                    };
                    format!("{n}={v}")
                })
                .collect();
            sample.push(cells.join(", "));
        }
    }
    Ok((failures, sample))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_files_compile_to_queries() {
        let yaml = "
version: 2
models:
  - name: profiles
    columns:
      - name: profile_id
        tests: [not_null, unique]
      - name: rfm_segment
        data_tests:
          - accepted_values:
              values: ['champions', \"new's\"]
              config: {severity: warn, where: \"frequency > 1\"}
      - name: email
        tests:
          - relationships:
              arguments: {to: \"ref('identity_map')\", field: id_value}
";
        let tests = from_schema_file(yaml, "schema.yml").unwrap();
        let names: Vec<&str> = tests.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "not_null_profiles_profile_id",
                "unique_profiles_profile_id",
                "accepted_values_profiles_rfm_segment__champions__new__s",
                "relationships_profiles_email__id_value__identity_map",
            ]
        );
        assert_eq!(tests[2].severity, Severity::Warn);
        assert!(
            tests[2].sql.contains("NOT IN ('champions', 'new''s')")
                && tests[2].sql.contains("WHERE frequency > 1"),
            "{}",
            tests[2].sql
        );
        assert!(tests[3].models.contains("identity_map"));
    }

    #[test]
    fn bad_schema_files_name_the_place() {
        let e = from_schema_file(
            "models: [{name: m, columns: [{name: c, tests: [sometimes_null]}]}]",
            "x.yml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("x.yml") && e.contains("sometimes_null"), "{e}");
    }
}
