//! `profiledb test`: dbt's generic column tests from schema files and
//! singular SQL tests, run against built models through the CLI.

use crate::support::profiledb;

fn result_line<'a>(log: &'a str, test: &str) -> &'a str {
    log.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(test))
        .unwrap_or_else(|| panic!("no result for {test} in\n{log}"))
}

#[test]
fn shipped_models_pass_their_tests() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    assert!(profiledb(root, &["generate", "--people", "300", "--seed", "3"]).0);
    assert!(profiledb(root, &["run"]).0);
    let (ok, log) = profiledb(root, &["test"]);
    assert!(ok, "{log}");
    assert!(log.contains("ran 21 tests: 21 passed, 0 failed"), "{log}");
    let (ok, log) = profiledb(root, &["test", "--select", "orders_unified"]);
    assert!(ok, "{log}");
    assert!(log.contains("ran 3 tests: 3 passed"), "{log}");
}

#[test]
fn failing_tests_show_their_rows_and_fail_the_command() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, models) = (tmp.path().join("root"), tmp.path().join("models"));
    std::fs::create_dir_all(models.join("tests")).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        models.join("customers.sql"),
        "SELECT * FROM (VALUES (1, 'gold', 10), (2, 'silver', 20), (2, 'tin', 30), \
         (CAST(NULL AS INT), 'gold', 99)) AS t(id, tier, country_id)\n",
    )
    .unwrap();
    std::fs::write(
        models.join("countries.sql"),
        "SELECT * FROM (VALUES (10, 'FR'), (20, 'DE')) AS t(country_id, code)\n",
    )
    .unwrap();
    std::fs::write(
        models.join("schema.yml"),
        "version: 2
models:
  - name: customers
    columns:
      - name: id
        data_tests: [not_null, unique]
      - name: tier
        data_tests:
          - accepted_values:
              values: [gold, silver]
          - accepted_values:
              values: [silver]
              config:
                severity: warn
                where: \"id = 1\"
      - name: country_id
        tests:
          - relationships:
              to: ref('countries')
              field: country_id
      - name: no_such_column
        tests: [not_null]
  - name: countries
    columns:
      - name: code
        tests: [unique]
",
    )
    .unwrap();
    std::fs::write(
        models.join("tests/no_big_countries.sql"),
        "SELECT * FROM {{ ref('customers') }} WHERE country_id > 50\n",
    )
    .unwrap();
    let dir = models.to_str().unwrap();
    let (ok, log) = profiledb(&root, &["run", "--models", dir]);
    assert!(ok, "{log}");
    let (ok, log) = profiledb(&root, &["test", "--models", dir]);
    assert!(!ok, "{log}");
    let l = result_line(&log, "not_null_customers_id");
    assert!(
        l.starts_with("  FAIL") && l.ends_with("1 failing row"),
        "{l}"
    );
    let l = result_line(&log, "unique_customers_id");
    assert!(l.starts_with("  FAIL"), "{l}");
    assert!(log.contains("unique_field=2, n_records=2"), "{log}");
    assert!(log.contains("value_field=tin, n_records=1"), "{log}");
    let l = result_line(
        &log,
        "relationships_customers_country_id__country_id__countries",
    );
    assert!(
        l.starts_with("  FAIL") && l.ends_with("2 failing rows"),
        "{l}"
    );
    assert!(log.contains("from_field=99"), "{log}");
    let l = result_line(&log, "not_null_customers_no_such_column");
    assert!(
        l.starts_with("  ERROR") && l.contains("no_such_column"),
        "{l}"
    );
    assert!(result_line(&log, "unique_countries_code").starts_with("  PASS"));
    assert!(result_line(&log, "no_big_countries").starts_with("  FAIL"));
    assert!(
        result_line(&log, "accepted_values_customers_tier__gold__silver").starts_with("  FAIL")
    );
    // A warning, on the one row its `where` keeps.
    let l = result_line(&log, "accepted_values_customers_tier__silver");
    assert!(
        l.starts_with("  WARN") && l.ends_with("1 failing row"),
        "{l}"
    );
    assert!(
        log.contains("ran 8 tests: 1 passed, 5 failed, 1 warned, 1 errors"),
        "{log}"
    );

    // Selecting a model runs the tests that read it, as dbt's eager
    // selection does: its own and the relationship that points at it.
    let (ok, log) = profiledb(&root, &["test", "--models", dir, "--select", "countries"]);
    assert!(!ok, "{log}");
    assert!(log.contains("ran 2 tests: 1 passed, 1 failed"), "{log}");

    // A schema file that cannot be read is an error naming it.
    std::fs::write(
        models.join("broken.yml"),
        "models: [{name: customers, columns: 3}]",
    )
    .unwrap();
    let (ok, log) = profiledb(&root, &["test", "--models", dir]);
    assert!(!ok && log.contains("broken.yml"), "{log}");
}
