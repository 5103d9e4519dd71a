//! Identity resolution benchmark, one mode per process (so each peak RSS is
//! its own); `benches/run-identity.sh` drives it and DuckDB side by side.
//!
//! - `gen <links> <dir>`: synthetic occurrences with `links` links, written
//!   as `occurrences.parquet` (the resolver's input) and `edges.parquet`
//!   (the same links as `(a, b)` pairs, for DuckDB's label propagation).
//! - `resolve <dir>`: profiledb's resolver with the shipped rules' defaults.
//! - `floor <dir>`: a bare union-find over the same arrays: intern the
//!   identifiers and rows, union the members of each row, label each
//!   identifier with its set. No rules, no evidence, no stable ids.
//!
#![allow(clippy::unwrap_used)]
//! Each mode reads its Parquet first, untimed, and prints one JSON line:
//! seconds from in-memory arrays to the result (the resolver's streamed
//! out and consumed batch by batch), and sizes.

use std::fs::File;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{
    ArrayRef, AsArray, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray,
};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use profiledb::identity::resolve::{Previous, input_schema, resolve_into};
use profiledb::identity::rules::Rules;
use profiledb::identity::union_find::UnionFind;

/// The floor's tables use the same fast hash as the resolver (foldhash).
type HashMap<K, V> = hashbrown::HashMap<K, V>;

fn main() {
    // PROFILEDB_LOG=profiledb=debug prints the resolver's phases.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("PROFILEDB_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["gen", links, dir] => generate(links.parse().expect("a number of links"), dir),
        ["resolve", dir] => run_resolve(dir),
        ["floor", dir] => run_floor(dir),
        _ => {
            eprintln!("usage: identity gen <links> <dir> | resolve <dir> | floor <dir>");
            std::process::exit(2);
        }
    }
}

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// People with a user id, 1–2 emails, 1–4 cookies and 0–2 devices; each
/// event links a cookie to one other identifier of the same person. One
/// event in a thousand happens on a device shared with another person.
fn generate(links: u64, dir: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = Rng(42);
    let mut occ = Occurrences::default();
    let mut edges: (StringBuilder, StringBuilder) = (StringBuilder::new(), StringBuilder::new());
    let (mut made, mut event, mut person) = (0u64, 0u64, 0u64);
    let occ_file = File::create(format!("{dir}/occurrences.parquet")).unwrap();
    let edge_file = File::create(format!("{dir}/edges.parquet")).unwrap();
    let mut occ_writer = ArrowWriter::try_new(occ_file, input_schema(), None).unwrap();
    let edge_schema = Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
        datafusion::arrow::datatypes::Field::new(
            "a",
            datafusion::arrow::datatypes::DataType::Utf8,
            false,
        ),
        datafusion::arrow::datatypes::Field::new(
            "b",
            datafusion::arrow::datatypes::DataType::Utf8,
            false,
        ),
    ]));
    let mut edge_writer = ArrowWriter::try_new(edge_file, Arc::clone(&edge_schema), None).unwrap();
    let mut flush = |occ: &mut Occurrences, edges: &mut (StringBuilder, StringBuilder)| {
        occ_writer.write(&occ.finish()).unwrap();
        let batch = RecordBatch::try_new(
            Arc::clone(&edge_schema),
            vec![Arc::new(edges.0.finish()), Arc::new(edges.1.finish())],
        )
        .unwrap();
        edge_writer.write(&batch).unwrap();
    };
    while made < links {
        person += 1;
        let cookies: Vec<(&str, String)> = (0..1 + rng.below(4))
            .map(|k| ("anonymous_id", format!("c{person}-{k}")))
            .collect();
        let mut ids: Vec<(&str, String)> = vec![("user_id", format!("u{person}"))];
        for k in 0..1 + rng.below(2) {
            ids.push(("email", format!("p{person}.{k}@mail.test")));
        }
        for k in 0..rng.below(3) {
            ids.push(("device_id", format!("d{person}-{k}")));
        }
        ids.extend(cookies.iter().cloned());
        let events = 2 + rng.below(8);
        for _ in 0..events {
            event += 1;
            let cookie = &cookies[rng.below(cookies.len() as u64) as usize];
            let other = &ids[rng.below(ids.len() as u64) as usize];
            let mut members = vec![cookie, other];
            let shared;
            if rng.below(1000) == 0 {
                shared = (
                    "device_id",
                    format!("shared{}", rng.below(person.max(2) / 2 + 1)),
                );
                members.push(&shared);
            }
            members.sort();
            members.dedup();
            let ts = 1_700_000_000_000_000 + event as i64 * 1_000_000;
            let key = format!("e{event}");
            for m in &members {
                occ.push(&key, ts, m.0, &m.1);
            }
            for m in &members[1..] {
                edges
                    .0
                    .append_value(format!("{}:{}", members[0].0, members[0].1));
                edges.1.append_value(format!("{}:{}", m.0, m.1));
                made += 1;
            }
            if occ.rows >= 1 << 16 {
                flush(&mut occ, &mut edges);
            }
        }
    }
    flush(&mut occ, &mut edges);
    occ_writer.close().unwrap();
    edge_writer.close().unwrap();
    println!("{{\"mode\":\"gen\",\"links\":{made},\"people\":{person},\"events\":{event}}}");
}

#[derive(Default)]
struct Occurrences {
    key: StringBuilder,
    ts: Vec<i64>,
    id_type: StringBuilder,
    value: StringBuilder,
    rows: usize,
}

impl Occurrences {
    fn push(&mut self, key: &str, ts: i64, id_type: &str, value: &str) {
        self.key.append_value(key);
        self.ts.push(ts);
        self.id_type.append_value(id_type);
        self.value.append_value(value);
        self.rows += 1;
    }

    fn finish(&mut self) -> RecordBatch {
        let n = self.rows;
        self.rows = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["events"; n])),
            Arc::new(self.key.finish()),
            Arc::new(
                TimestampMicrosecondArray::from(std::mem::take(&mut self.ts)).with_timezone("UTC"),
            ),
            Arc::new(self.id_type.finish()),
            Arc::new(self.value.finish()),
            Arc::new(StringArray::from(vec![None::<&str>; n])),
        ];
        RecordBatch::try_new(input_schema(), columns).unwrap()
    }
}

fn read(path: &str) -> (Vec<RecordBatch>, usize) {
    let file = File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .with_batch_size(1 << 16)
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    let bytes = batches.iter().map(RecordBatch::get_array_memory_size).sum();
    (batches, bytes)
}

fn run_resolve(dir: &str) {
    let (batches, bytes) = read(&format!("{dir}/occurrences.parquet"));
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    // The shipped rules' shape: user_id one per profile.
    let rules = Rules::builtin();
    // The output is consumed batch by batch as it streams out (counted and
    // dropped), as a model run consumes it by writing it.
    let counts = std::sync::Mutex::new((hashbrown::HashSet::new(), 0usize));
    let start = Instant::now();
    resolve_into(batches, &rules, &Previous::empty(0), &|b| {
        let pid = b.column(0).as_string::<i32>();
        let status = b.column(3).as_string::<i32>();
        let mut counts = counts.lock().unwrap();
        for i in 0..b.num_rows() {
            if status.value(i) == "linked" {
                counts.1 += 1;
                counts
                    .0
                    .insert(profiledb::identity::resolve::identifier_hash(
                        "",
                        pid.value(i),
                    ));
            }
        }
        Ok(())
    })
    .unwrap();
    let seconds = start.elapsed().as_secs_f64();
    let (profiles, identifiers) = counts.into_inner().unwrap();
    println!(
        "{{\"mode\":\"resolve\",\"seconds\":{seconds:.3},\"occurrences\":{rows},\"input_bytes\":{bytes},\"identifiers\":{identifiers},\"profiles\":{}}}",
        profiles.len()
    );
}

fn run_floor(dir: &str) {
    let (batches, bytes) = read(&format!("{dir}/occurrences.parquet"));
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let start = Instant::now();
    let mut ids: HashMap<(&str, &str), u32> = HashMap::with_capacity(rows / 2);
    let mut groups: HashMap<&str, u32> = HashMap::with_capacity(rows / 2);
    let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(rows);
    for b in &batches {
        let key = b.column(1).as_string::<i32>();
        let t = b.column(3).as_string::<i32>();
        let v = b.column(4).as_string::<i32>();
        for r in 0..b.num_rows() {
            let n = ids.len() as u32;
            let id = *ids.entry((t.value(r), v.value(r))).or_insert(n);
            let n = groups.len() as u32;
            let g = *groups.entry(key.value(r)).or_insert(n);
            pairs.push((g, id));
        }
    }
    let mut uf = UnionFind::new(ids.len());
    let mut first_of_group: Vec<u32> = vec![u32::MAX; groups.len()];
    for &(g, id) in &pairs {
        match first_of_group[g as usize] {
            u32::MAX => first_of_group[g as usize] = id,
            f => {
                uf.union(f, id);
            }
        }
    }
    let labels: Vec<u32> = (0..ids.len() as u32).map(|i| uf.find(i)).collect();
    let seconds = start.elapsed().as_secs_f64();
    let mut roots = labels.clone();
    roots.sort_unstable();
    roots.dedup();
    assert!(!labels.is_empty() && !first_of_group.is_empty() && !ids.is_empty());
    println!(
        "{{\"mode\":\"floor\",\"seconds\":{seconds:.3},\"occurrences\":{rows},\"input_bytes\":{bytes},\"identifiers\":{},\"profiles\":{}}}",
        labels.len(),
        roots.len()
    );
}
