//! Column builders for the generated tables, flushed to Parquet files of at
//! most [`ROWS_PER_FILE`] rows. Each file is written whole with one `put`,
//! so an interrupted run never leaves a partial file in the landing zone.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder, UInt32Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;

use super::GenerateSummary;
use super::person::PersonData;
use crate::catalog::sources::declared_schema;
use crate::error::Result;
use crate::storage::{Storage, layout};

const ROWS_PER_FILE: usize = 250_000;

pub struct Writers {
    storage: Storage,
    /// Distinguishes this run's files from an earlier run's.
    run: String,
    events: Table,
    orders: Table,
    contacts: Table,
    truth_ids: Table,
    truth_people: Table,
    summary: GenerateSummary,
}

/// One table being written: a builder per column and a file counter.
struct Table {
    dir: String,
    schema: SchemaRef,
    columns: Vec<Column>,
    rows: usize,
    files: usize,
}

enum Column {
    Str(StringBuilder),
    Ts(TimestampMicrosecondBuilder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    U32(UInt32Builder),
}

impl Column {
    fn for_type(t: &DataType) -> Self {
        match t {
            DataType::Timestamp(_, _) => {
                Column::Ts(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
            }
            DataType::Float64 => Column::F64(Float64Builder::new()),
            DataType::Boolean => Column::Bool(BooleanBuilder::new()),
            DataType::Date32 => Column::Date(Date32Builder::new()),
            DataType::UInt32 => Column::U32(UInt32Builder::new()),
            _ => Column::Str(StringBuilder::new()),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Str(b) => Arc::new(b.finish()),
            Column::Ts(b) => Arc::new(b.finish()),
            Column::F64(b) => Arc::new(b.finish()),
            Column::Bool(b) => Arc::new(b.finish()),
            Column::Date(b) => Arc::new(b.finish()),
            Column::U32(b) => Arc::new(b.finish()),
        }
    }

    fn s(&mut self, v: Option<&str>) {
        if let Column::Str(b) = self {
            b.append_option(v);
        }
    }
    fn ts(&mut self, v: Option<i64>) {
        if let Column::Ts(b) = self {
            b.append_option(v);
        }
    }
    fn f64(&mut self, v: f64) {
        if let Column::F64(b) = self {
            b.append_value(v);
        }
    }
    fn bool(&mut self, v: bool) {
        if let Column::Bool(b) = self {
            b.append_value(v);
        }
    }
    fn date(&mut self, v: i32) {
        if let Column::Date(b) = self {
            b.append_value(v);
        }
    }
    fn u32(&mut self, v: u32) {
        if let Column::U32(b) = self {
            b.append_value(v);
        }
    }
}

impl Table {
    fn new(dir: String, schema: Schema) -> Self {
        let columns = schema
            .fields()
            .iter()
            .map(|f| Column::for_type(f.data_type()))
            .collect();
        Self {
            dir,
            schema: Arc::new(schema),
            columns,
            rows: 0,
            files: 0,
        }
    }

    async fn flush(&mut self, storage: &Storage, run: &str) -> Result<bool> {
        if self.rows == 0 {
            return Ok(false);
        }
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(Column::finish).collect();
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), arrays)?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let mut buf = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut buf, Arc::clone(&self.schema), Some(props))?;
        writer.write(&batch)?;
        writer.close()?;
        let path = format!("{}/part-{run}-{:05}.parquet", self.dir, self.files);
        storage.put_bytes(&path, Bytes::from(buf)).await?;
        self.files += 1;
        self.rows = 0;
        Ok(true)
    }
}

fn schema(name: &str) -> Schema {
    declared_schema(name).unwrap_or_else(Schema::empty)
}

impl Writers {
    /// `run` names the batch's files (`<table>-<run>-…`).
    pub fn new(storage: Storage, run: String) -> Self {
        let s = |n: &str| Field::new(n, DataType::Utf8, false);
        Self {
            storage,
            run,
            events: Table::new(
                layout::raw_dir("events").trim_end_matches('/').to_owned(),
                schema("events"),
            ),
            orders: Table::new(
                layout::raw_dir("orders").trim_end_matches('/').to_owned(),
                schema("orders"),
            ),
            contacts: Table::new(
                layout::raw_dir("crm_contacts")
                    .trim_end_matches('/')
                    .to_owned(),
                schema("crm_contacts"),
            ),
            truth_ids: Table::new(
                format!("{}/identifiers", layout::TRUTH),
                Schema::new(vec![s("person_id"), s("id_type"), s("id_value")]),
            ),
            truth_people: Table::new(
                format!("{}/people", layout::TRUTH),
                Schema::new(vec![
                    s("person_id"),
                    Field::new("order_count", DataType::UInt32, false),
                    Field::new("total_revenue", DataType::Float64, false),
                ]),
            ),
            summary: GenerateSummary::default(),
        }
    }

    pub async fn push(&mut self, data: PersonData) -> Result<()> {
        for e in &data.events {
            let c = &mut self.events.columns;
            c[0].s(Some(&e.message_id));
            c[1].s(Some(e.kind));
            c[2].s(e.event.as_deref());
            c[3].ts(Some(e.timestamp));
            c[4].ts(Some(e.timestamp + 1_500_000));
            c[5].s(e.anonymous_id.as_deref());
            c[6].s(e.user_id.as_deref());
            c[7].s(e.previous_id.as_deref());
            c[8].s(None);
            c[9].s(Some(&e.context));
            c[10].s(e.traits.as_deref());
            c[11].s(e.properties.as_deref());
            self.events.rows += 1;
        }
        self.summary.events += data.events.len() as u64;
        for o in &data.orders {
            let c = &mut self.orders.columns;
            c[0].s(Some(&o.order_id));
            c[1].s(Some(&o.email));
            c[2].f64(o.amount);
            c[3].s(Some(o.currency));
            c[4].ts(Some(o.ordered_at));
            self.orders.rows += 1;
        }
        self.summary.orders += data.orders.len() as u64;
        for k in &data.contacts {
            let c = &mut self.contacts.columns;
            c[0].s(Some(&k.contact_id));
            c[1].s(k.email.as_deref());
            c[2].s(k.phone.as_deref());
            c[3].s(Some(&k.first_name));
            c[4].s(Some(&k.last_name));
            c[5].date(k.birthday);
            c[6].s(Some(k.city));
            c[7].s(Some(k.country));
            c[8].bool(k.consent_email);
            c[9].ts(Some(k.updated_at));
            self.contacts.rows += 1;
        }
        self.summary.contacts += data.contacts.len() as u64;
        for t in &data.truth {
            for (id_type, value) in &t.identifiers {
                let c = &mut self.truth_ids.columns;
                c[0].s(Some(&t.person_id));
                c[1].s(Some(id_type));
                c[2].s(Some(value));
                self.truth_ids.rows += 1;
            }
            let c = &mut self.truth_people.columns;
            c[0].s(Some(&t.person_id));
            c[1].u32(t.order_count);
            c[2].f64(t.total_revenue);
            self.truth_people.rows += 1;
        }
        for table in [
            &mut self.events,
            &mut self.orders,
            &mut self.contacts,
            &mut self.truth_ids,
            &mut self.truth_people,
        ] {
            if table.rows >= ROWS_PER_FILE && table.flush(&self.storage, &self.run).await? {
                self.summary.files += 1;
            }
        }
        Ok(())
    }

    pub async fn finish(mut self) -> Result<GenerateSummary> {
        for table in [
            &mut self.events,
            &mut self.orders,
            &mut self.contacts,
            &mut self.truth_ids,
            &mut self.truth_people,
        ] {
            if table.flush(&self.storage, &self.run).await? {
                self.summary.files += 1;
            }
        }
        Ok(self.summary)
    }
}
