//! Model files as dbt writes them: Jinja templates (minijinja) rendered to
//! SQL before they are parsed. Supported: `{{ config(...) }}` (its settings
//! become the model's [`ModelConfig`]), `{{ ref('model') }}`,
//! `{{ source('raw', 'events') }}` and `{% if is_incremental() %}`. A file
//! without Jinja renders to itself, so plain table names keep working.

use std::sync::{Arc, Mutex};

use minijinja::value::Kwargs;
use minijinja::{Environment, Error as JinjaError, ErrorKind, UndefinedBehavior};

/// How a model is materialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Materialized {
    /// Rebuilt from all its input on every run.
    #[default]
    Table,
    /// Appends the rows of the raw files that arrived since its last
    /// successful run (see [`super::run`]).
    Incremental,
    /// A persisted view: nothing is stored, readers plan its SQL against
    /// the current versions of what it reads.
    View,
}

/// The settings of a model's `{{ config(...) }}` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelConfig {
    pub materialized: Materialized,
    pub tags: Vec<String>,
    /// An incremental model's key (`unique_key='id'` or a list): an
    /// incremental run replaces the rows of the keys it recomputes
    /// instead of appending (see [`super::merge`]).
    pub unique_key: Vec<String>,
    /// The raw sources' event time column (`event_time='timestamp'`): a
    /// merge recomputes the time batches the new rows fall in.
    pub event_time: Option<String>,
    /// The time batch the key is bucketed by (`batch_size='day'`).
    pub batch_size: BatchSize,
    /// How late data may arrive and still be merged by recomputing its
    /// batches (`lookback='3 days'`); later data rebuilds the model.
    pub lookback: Option<Period>,
    /// When `profiledb serve` runs the model (see [`super::schedule`]).
    pub schedule: Option<super::schedule::Schedule>,
    /// How often a failed scheduled run is retried (with backoff) before
    /// the model waits for its next scheduled time.
    pub retries: u32,
    /// The column lists the table is indexed by (dbt-postgres' `indexes`
    /// config): incremental runs read only the rows of the values they look
    /// up in them (see [`super::column_index`]).
    pub indexes: Vec<Vec<String>>,
}

/// How often a failed scheduled run is retried unless a model says.
pub const DEFAULT_RETRIES: u32 = 2;

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            materialized: Materialized::default(),
            tags: Vec::new(),
            unique_key: Vec::new(),
            event_time: None,
            batch_size: BatchSize::default(),
            lookback: None,
            schedule: None,
            retries: DEFAULT_RETRIES,
            indexes: Vec::new(),
        }
    }
}

/// A time bucket of `event_time` (dbt's microbatch `batch_size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchSize {
    Hour,
    #[default]
    Day,
    Month,
    Year,
}

impl BatchSize {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "hour" => Self::Hour,
            "day" => Self::Day,
            "month" => Self::Month,
            "year" => Self::Year,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Month => "month",
            Self::Year => "year",
        }
    }
}

/// A duration as written in a config (`'3 days'`, `'12 hours'`,
/// `'15 minutes'`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub text: String,
    pub micros: i64,
}

impl Period {
    pub fn parse(text: &str) -> Option<Self> {
        let mut words = text.split_whitespace();
        let n: i64 = words.next()?.parse().ok()?;
        let unit: i64 = match words.next()?.trim_end_matches('s') {
            "minute" => 60,
            "hour" => 3_600,
            "day" => 86_400,
            "week" => 7 * 86_400,
            _ => return None,
        };
        if words.next().is_some() || n < 0 {
            return None;
        }
        Some(Self {
            text: text.to_owned(),
            micros: n.checked_mul(unit)?.checked_mul(1_000_000)?,
        })
    }
}

/// A setting's value that is a string or a list of strings.
fn one_or_many(kwargs: &Kwargs, name: &str) -> Result<Option<Vec<String>>, JinjaError> {
    let Some(value) = kwargs.get::<Option<minijinja::Value>>(name)? else {
        return Ok(None);
    };
    if let Some(s) = value.as_str() {
        return Ok(Some(vec![s.to_owned()]));
    }
    let list: Result<Vec<String>, _> = value
        .try_iter()?
        .map(|v| {
            v.as_str().map(str::to_owned).ok_or_else(|| {
                JinjaError::new(
                    ErrorKind::InvalidOperation,
                    format!("{name} must be a string or a list of strings"),
                )
            })
        })
        .collect();
    list.map(Some)
}

/// dbt-postgres' `indexes=[{'columns': ['a', 'b'], 'type': 'btree'}]`:
/// each index's columns. Every index answers equality and `IN` lookups
/// (a hash index), whatever its `type`; a `unique` one is refused (the
/// `unique` test checks that).
fn indexes(list: &minijinja::Value) -> Result<Vec<Vec<String>>, JinjaError> {
    let shape =
        || invalid("indexes must be a list of {'columns': [...]} (optionally with 'type')".into());
    let mut out = Vec::new();
    if list.kind() != minijinja::value::ValueKind::Seq {
        return Err(shape());
    }
    for index in list.try_iter().map_err(|_| shape())? {
        if index.kind() != minijinja::value::ValueKind::Map {
            return Err(shape());
        }
        let keys: Vec<String> = index
            .try_iter()
            .map_err(|_| shape())?
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect();
        let mut columns = Vec::new();
        for key in &keys {
            let value = index.get_attr(key)?;
            match key.as_str() {
                "columns" => match value.as_str() {
                    Some(one) => columns = vec![one.to_owned()],
                    None => {
                        for c in value.try_iter().map_err(|_| shape())? {
                            columns.push(c.as_str().ok_or_else(shape)?.to_owned());
                        }
                    }
                },
                "type" => {}
                "unique" if !value.is_true() => {}
                "unique" => {
                    return Err(invalid(
                        "unique indexes are not supported: declare a `unique` test in \
                         schema.yml to check the columns"
                            .into(),
                    ));
                }
                other => return Err(invalid(format!("an index has no setting '{other}'"))),
            }
        }
        if columns.is_empty() {
            return Err(invalid("an index needs 'columns'".into()));
        }
        if !out.contains(&columns) {
            out.push(columns);
        }
    }
    Ok(out)
}

fn invalid(message: String) -> JinjaError {
    JinjaError::new(ErrorKind::InvalidOperation, message)
}

/// A rendered model: its SQL and its settings.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub sql: String,
    pub config: ModelConfig,
}

/// Renders a model's template; `incremental` is what `is_incremental()`
/// answers.
pub fn render(template: &str, incremental: bool) -> Result<Rendered, String> {
    let config = Arc::new(Mutex::new(ModelConfig::default()));
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // SQL is not HTML: nothing is escaped.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    let seen = Arc::clone(&config);
    env.add_function(
        "config",
        move |kwargs: Kwargs| -> Result<String, JinjaError> {
            let mut c = seen.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(m) = kwargs.get::<Option<String>>("materialized")? {
                c.materialized = match m.as_str() {
                    "table" => Materialized::Table,
                    "incremental" => Materialized::Incremental,
                    "view" => Materialized::View,
                    other => {
                        return Err(JinjaError::new(
                            ErrorKind::InvalidOperation,
                            format!(
                                "materialized='{other}' is not supported (table, view, incremental)"
                            ),
                        ));
                    }
                };
            }
            if let Some(tags) = kwargs.get::<Option<Vec<String>>>("tags")? {
                c.tags = tags;
            }
            if let Some(key) = one_or_many(&kwargs, "unique_key")? {
                c.unique_key = key;
            }
            if let Some(column) = kwargs.get::<Option<String>>("event_time")? {
                c.event_time = Some(column);
            }
            if let Some(size) = kwargs.get::<Option<String>>("batch_size")? {
                c.batch_size = BatchSize::parse(&size).ok_or_else(|| {
                    invalid(format!(
                        "batch_size='{size}' is not supported (hour, day, month, year)"
                    ))
                })?;
            }
            if let Some(text) = kwargs.get::<Option<String>>("lookback")? {
                c.lookback = Some(Period::parse(&text).ok_or_else(|| {
                    invalid(format!(
                        "lookback='{text}' is not a duration (such as '3 days' or '12 hours')"
                    ))
                })?);
            }
            if let Some(text) = kwargs.get::<Option<String>>("schedule")? {
                c.schedule = Some(super::schedule::Schedule::parse(&text).map_err(invalid)?);
            }
            if let Some(n) = kwargs.get::<Option<u32>>("retries")? {
                c.retries = n;
            }
            if let Some(list) = kwargs.get::<Option<minijinja::Value>>("indexes")? {
                c.indexes = indexes(&list)?;
            }
            if !c.indexes.is_empty() && c.materialized == Materialized::View {
                return Err(invalid(
                    "indexes apply to tables (materialized='table' or 'incremental')".into(),
                ));
            }
            if !c.unique_key.is_empty() && c.materialized != Materialized::Incremental {
                return Err(invalid(
                    "unique_key applies to materialized='incremental' models".into(),
                ));
            }
            if c.event_time.is_some() && c.unique_key.is_empty() {
                return Err(invalid(
                    "event_time needs a unique_key: a merge replaces the rows of the keys it \
                     recomputes"
                        .into(),
                ));
            }
            if c.lookback.is_some() && c.event_time.is_none() {
                return Err(invalid("lookback needs event_time".into()));
            }
            // Any other setting is refused, not ignored.
            kwargs.assert_all_used()?;
            Ok(String::new())
        },
    );
    env.add_function("ref", |name: String| name);
    env.add_function("source", |_source: String, table: String| table);
    env.add_function("is_incremental", move || incremental);
    let sql = env.render_str(template, ()).map_err(|e| match e.line() {
        Some(line) => format!("template error at line {line}: {e}"),
        None => format!("template error: {e}"),
    })?;
    let config = config.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(Rendered { sql, config })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_sql_renders_to_itself() {
        let r = render("SELECT 1 AS a -- {not jinja}", false).unwrap();
        assert_eq!(r.sql, "SELECT 1 AS a -- {not jinja}");
        assert_eq!(r.config, ModelConfig::default());
    }

    #[test]
    fn config_ref_source_and_is_incremental() {
        let t = "{{ config(materialized='incremental', tags=['daily']) }}\
                 SELECT * FROM {{ source('raw', 'events') }} JOIN {{ ref('profiles') }} USING (x)\
                 {% if is_incremental() %} WHERE new{% endif %}";
        let full = render(t, false).unwrap();
        assert_eq!(full.config.materialized, Materialized::Incremental);
        assert_eq!(full.config.tags, vec!["daily".to_owned()]);
        assert_eq!(full.sql, "SELECT * FROM events JOIN profiles USING (x)");
        assert!(render(t, true).unwrap().sql.ends_with(" WHERE new"));
    }

    #[test]
    fn unknown_settings_and_names_are_errors() {
        let e = render("{{ config(materialized='ephemeral') }}SELECT 1", false).unwrap_err();
        assert!(e.contains("ephemeral"), "{e}");
        let e = render("{{ config(colour='red') }}SELECT 1", false).unwrap_err();
        assert!(e.contains("colour"), "{e}");
        assert!(render("SELECT {{ nope }}", false).is_err());
        let e = render("{{ config(unique_key='id') }}SELECT 1", false).unwrap_err();
        assert!(e.contains("incremental"), "{e}");
        let e = render(
            "{{ config(materialized='incremental', unique_key='id', event_time='t', lookback='soon') }}",
            false,
        )
        .unwrap_err();
        assert!(e.contains("soon"), "{e}");
    }

    #[test]
    fn indexes_as_dbt_postgres_declares_them() {
        let r = render(
            "{{ config(materialized='incremental', indexes=[{'columns': ['profile_id']}, \
             {'columns': ['id_type', 'id_value'], 'type': 'btree'}, {'columns': 'x', 'unique': False}]) }}SELECT 1",
            false,
        )
        .unwrap();
        assert_eq!(
            r.config.indexes,
            vec![
                vec!["profile_id".to_owned()],
                vec!["id_type".to_owned(), "id_value".to_owned()],
                vec!["x".to_owned()],
            ]
        );
        for (bad, says) in [
            ("indexes=[{'columns': ['a'], 'unique': True}]", "unique"),
            ("indexes=[{'cols': ['a']}]", "cols"),
            ("indexes=[{'type': 'hash'}]", "columns"),
            ("indexes=['a']", "list of"),
            (
                "materialized='view', indexes=[{'columns': ['a']}]",
                "tables",
            ),
        ] {
            let e = render(&format!("{{{{ config({bad}) }}}}SELECT 1"), false).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn merge_settings() {
        let r = render(
            "{{ config(materialized='incremental', unique_key=['user', 'day'], \
             event_time='timestamp', batch_size='hour', lookback='3 days') }}SELECT 1",
            false,
        )
        .unwrap();
        assert_eq!(
            r.config.unique_key,
            vec!["user".to_owned(), "day".to_owned()]
        );
        assert_eq!(r.config.event_time.as_deref(), Some("timestamp"));
        assert_eq!(r.config.batch_size, BatchSize::Hour);
        assert_eq!(r.config.lookback.unwrap().micros, 3 * 86_400_000_000);
        let one = render(
            "{{ config(materialized='incremental', unique_key='id') }}SELECT 1",
            false,
        )
        .unwrap();
        assert_eq!(one.config.unique_key, vec!["id".to_owned()]);
    }
}
