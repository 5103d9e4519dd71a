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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelConfig {
    pub materialized: Materialized,
    pub tags: Vec<String>,
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
    }
}
