//! COPY through psql's `\copy` and tokio-postgres, and the psql
//! meta-commands analysts use (`\l \dn \dt \dv \d \df \x`): exports in CSV
//! and text, a CRM CSV loaded into the landing zone and read by the
//! models, and a bad file refused by line and column with nothing written.

use futures::{SinkExt, TryStreamExt};

use crate::support::{TestServer, generated_root, run_models};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_exports_and_loads_csv_through_psql() {
    let root = generated_root(300, 61).await;
    run_models(root.path(), None).await;
    let server = TestServer::start(root.path()).await;
    let client = server.client().await;
    let dir = tempfile::tempdir().unwrap();

    // Export: psql writes the file; its rows are the query's.
    let out_file = dir.path().join("top.csv");
    let (ok, out, err) = server.psql(&[
        "-c",
        &format!(
            "\\copy (SELECT profile_id, order_count, consent_email FROM profiles ORDER BY profile_id LIMIT 4) TO '{}' CSV HEADER",
            out_file.display()
        ),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("COPY 4"), "{out}");
    let csv = std::fs::read_to_string(&out_file).unwrap();
    let expected: Vec<String> = client
        .query(
            "SELECT profile_id, order_count, consent_email FROM profiles ORDER BY profile_id LIMIT 4",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let consent: Option<bool> = r.get(2);
            format!(
                "{},{},{}",
                r.get::<_, String>(0),
                r.get::<_, i64>(1),
                consent.map_or("", |c| if c { "t" } else { "f" })
            )
        })
        .collect();
    assert_eq!(
        csv,
        format!(
            "profile_id,order_count,consent_email\n{}\n",
            expected.join("\n")
        )
    );

    // tokio-postgres reads the text format: tabs, \N for NULL.
    let stream = client
        .copy_out("COPY (SELECT 'a\tb' AS x, NULL::text AS y, 2 AS z) TO STDOUT")
        .await
        .unwrap();
    let chunks: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
    assert_eq!(chunks.concat(), b"a\\tb\t\\N\t2\n");

    // Load: a CRM export lands as a new file in raw/crm_contacts and the
    // models read it.
    let before: i64 = client
        .query_one("SELECT count(*) FROM crm_contacts", &[])
        .await
        .unwrap()
        .get(0);
    let crm = dir.path().join("crm.csv");
    std::fs::write(
        &crm,
        "contact_id,email,first_name,birthday,consent_email\n\
         c-new-1,new.person@example.com,Ada,1990-04-01,t\n\
         c-new-2,\"quoted, comma@example.com\",,,\n",
    )
    .unwrap();
    let raw_files = || {
        std::fs::read_dir(root.path().join("raw/crm_contacts"))
            .unwrap()
            .count()
    };
    let files_before = raw_files();
    let (ok, out, err) = server.psql(&[
        "-c",
        &format!(
            "\\copy crm_contacts (contact_id, email, first_name, birthday, consent_email) FROM '{}' CSV HEADER",
            crm.display()
        ),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("COPY 2"), "{out}");
    assert_eq!(raw_files(), files_before + 1);
    let loaded = client
        .query(
            "SELECT contact_id, email, first_name, birthday::text, consent_email FROM crm_contacts \
             WHERE contact_id LIKE 'c-new-%' ORDER BY contact_id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(loaded.len(), 2);
    assert_eq!(
        loaded[0].get::<_, Option<String>>(3).as_deref(),
        Some("1990-04-01")
    );
    assert_eq!(loaded[0].get::<_, Option<bool>>(4), Some(true));
    assert_eq!(
        loaded[1].get::<_, Option<String>>(1).as_deref(),
        Some("quoted, comma@example.com")
    );
    assert_eq!(loaded[1].get::<_, Option<String>>(2), None);
    let after: i64 = client
        .query_one("SELECT count(*) FROM crm_contacts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(after, before + 2);
    // The next model run resolves the new contact into a profile.
    run_models(root.path(), None).await;
    let resolved: i64 = client
        .query_one(
            "SELECT count(*) FROM identity_map WHERE id_type = 'email' AND id_value = 'new.person@example.com'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(resolved, 1);

    // A bad line: named, and nothing is written.
    std::fs::write(
        &crm,
        "contact_id,birthday\nc-bad-1,1991-01-01\nc-bad-2,not a date\n",
    )
    .unwrap();
    let (ok, _, err) = server.psql(&[
        "-c",
        &format!(
            "\\copy crm_contacts (contact_id, birthday) FROM '{}' CSV HEADER",
            crm.display()
        ),
    ]);
    assert!(!ok);
    assert!(err.contains("line 3, column birthday"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(raw_files(), files_before + 1);

    // tokio-postgres COPY FROM STDIN in text format, into a table.
    client
        .batch_execute("CREATE TABLE public.notes (id bigint, note text)")
        .await
        .unwrap();
    let sink = client.copy_in("COPY notes FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"1\tfirst\\tline\n2\t\\N\n"))
        .await
        .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2);
    let notes: Vec<(i64, Option<String>)> = client
        .query("SELECT id, note FROM notes ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(notes, [(1, Some("first\tline".to_owned())), (2, None)]);
    let err = client
        .copy_in::<_, bytes::Bytes>("COPY no_such_table FROM STDIN")
        .await
        .err()
        .unwrap();
    assert_eq!(err.code().unwrap().code(), "42P01");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_meta_commands_answer() {
    let root = generated_root(200, 62).await;
    run_models(root.path(), None).await;
    let server = TestServer::start(root.path()).await;
    let (ok, _, err) = server.psql(&[
        "-c",
        "CREATE VIEW segments.recent AS SELECT profile_id FROM profiles WHERE last_order_at > now() - INTERVAL '30 days'",
    ]);
    assert!(ok, "{err}");
    for (command, expected) in [
        ("\\l", "profiledb"),
        ("\\dn", "segments"),
        ("\\dt", "identity_map"),
        ("\\dv segments.*", "recent"),
        ("\\d profiles", "rfm_segment"),
        ("\\d+ segments.recent", "View definition"),
        ("\\df", "List of functions"),
        ("\\df+ pg_catalog.int8recv", "internal"),
        ("\\dn+", "standard public schema"),
    ] {
        let (ok, out, err) = server.psql(&["-c", command]);
        assert!(ok, "{command}: {err}");
        assert!(out.contains(expected), "{command} lacks {expected}:\n{out}");
    }
    let (ok, out, err) = server.psql(&["-c", "\\x on", "-c", "SELECT 1 AS one, 'a' AS two"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("-[ RECORD 1 ]") && out.contains("two | a"),
        "{out}"
    );
    server.stop().await;
}
