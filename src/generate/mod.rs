//! `profiledb generate`: realistic multi-source data in the landing layout
//! (`raw/events`, `raw/crm_contacts`, `raw/orders`), with the ground truth
//! (person → identifiers, orders, revenue) under `truth/` for tests.
//!
//! People are generated one at a time and rows are flushed to Parquet files
//! of bounded size, so memory stays flat however many people are asked for.

mod names;
pub mod person;
mod writer;

use std::time::Instant;

use crate::error::Result;
use crate::storage::Storage;
use person::Generator;
use writer::Writers;

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub people: u64,
    /// The number of the first person: a batch generated from another
    /// number on is other people (a later landing of new customers).
    pub first_person: u64,
    pub seed: u64,
    /// End of the generated year of activity (µs since the epoch, UTC).
    pub as_of: i64,
}

#[derive(Debug, Clone, Default)]
pub struct GenerateSummary {
    pub people: u64,
    pub events: u64,
    pub orders: u64,
    pub contacts: u64,
    pub files: u64,
    pub seconds: f64,
}

/// Writes a dataset into `storage`, calling `progress(done)` now and then.
pub async fn generate(
    storage: &Storage,
    options: &GenerateOptions,
    mut progress: impl FnMut(u64),
) -> Result<GenerateSummary> {
    let started = Instant::now();
    let generator = Generator {
        seed: options.seed,
        first_person: options.first_person,
        end: options.first_person + options.people,
        as_of: options.as_of,
    };
    // Files are named by seed (and first person, past 0), so batches land
    // side by side.
    let run = match options.first_person {
        0 => format!("s{}", options.seed),
        first => format!("s{}-p{first}", options.seed),
    };
    let mut writers = Writers::new(storage.clone(), run);
    for (done, i) in (options.first_person..generator.end).enumerate() {
        let data = generator.person(i);
        writers.push(data).await?;
        if done % 10_000 == 0 {
            progress(done as u64);
        }
    }
    progress(options.people);
    let mut summary = writers.finish().await?;
    summary.people = options.people;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}
