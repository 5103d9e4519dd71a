//! Changes to existing relations: `ALTER TABLE|VIEW … RENAME TO` and
//! `COMMENT ON`.
//!
//! A rename publishes the object under its new name before removing the old
//! one, so a reader finds the relation under one name or the other (dbt's
//! swap of `x__dbt_tmp` into `x` never shows a missing or partial table).
//! A table's files move to the new name's folder (hard links on a local
//! root, server-side copies on S3), because each table prunes its own
//! folder. Views are stored as SQL and bound by name when read: a view
//! reading a renamed relation reads whatever has that name now.

use super::{Catalog, RelationKind};
use crate::catalog::views::ViewDef;
use crate::error::{CatalogError, Error, Result};
use crate::storage::comments::Comments;
use crate::storage::layout;
use crate::storage::publish::TablePointer;

impl Catalog {
    /// Renames `schema.name` (a table or a view) to `schema.new_name`.
    pub async fn rename(
        &self,
        schema: &str,
        name: &str,
        new_name: &str,
        if_exists: bool,
    ) -> Result<()> {
        let _guard = self.ddl.lock().await;
        self.refresh().await?;
        let snap = self.snapshot();
        let Some(relation) = snap.relation(schema, name) else {
            return if if_exists {
                Ok(())
            } else {
                Err(CatalogError::UndefinedTable(format!("{schema}.{name}")).into())
            };
        };
        if snap.relation(schema, new_name).is_some() {
            return Err(CatalogError::DuplicateTable(format!("{schema}.{new_name}")).into());
        }
        match relation.kind {
            RelationKind::Table => self.rename_table(schema, name, new_name).await?,
            RelationKind::View => {
                let mut def = self.view_def(schema, name).await?;
                def.name = new_name.to_owned();
                self.storage
                    .put_json(&layout::view_file(schema, new_name), &def)
                    .await?;
                self.storage
                    .delete(&layout::view_file(schema, name))
                    .await?;
            }
            RelationKind::Source => return Err(raw_source(schema, name)),
            RelationKind::System => return Err(system_table(schema, name)),
        }
        self.refresh().await
    }

    async fn rename_table(&self, schema: &str, name: &str, new_name: &str) -> Result<()> {
        let mut pointer = self.table_pointer(schema, name).await?;
        let old_dir = format!("{}/", layout::table_dir(schema, name));
        let new_dir = format!("{}/", layout::table_dir(schema, new_name));
        let moved = |f: &str| match f.strip_prefix(&old_dir) {
            Some(rest) => format!("{new_dir}{rest}"),
            None => f.to_owned(),
        };
        for f in pointer
            .files
            .iter()
            .chain(pointer.deletes.values().map(|d| &d.path))
        {
            let to = moved(f);
            if to != *f {
                self.storage.copy(f, &to).await?;
            }
        }
        pointer.name = new_name.to_owned();
        pointer.files = pointer.files.iter().map(|f| moved(f)).collect();
        pointer.deletes = std::mem::take(&mut pointer.deletes)
            .into_iter()
            .map(|(f, mut d)| {
                d.path = moved(&d.path);
                (moved(&f), d)
            })
            .collect();
        self.storage
            .put_json(&layout::table_pointer(schema, new_name), &pointer)
            .await?;
        self.storage
            .delete(&layout::table_pointer(schema, name))
            .await?;
        self.storage.delete_prefix(&old_dir).await
    }

    /// `COMMENT ON TABLE|VIEW|COLUMN … IS text` (`None` for `IS NULL`).
    pub async fn set_comment(
        &self,
        schema: &str,
        name: &str,
        column: Option<&str>,
        text: Option<String>,
    ) -> Result<()> {
        let _guard = self.ddl.lock().await;
        self.refresh().await?;
        let snap = self.snapshot();
        let relation = snap
            .relation(schema, name)
            .ok_or_else(|| CatalogError::UndefinedTable(format!("{schema}.{name}")))?;
        if let Some(c) = column
            && relation.arrow_schema.field_with_name(c).is_err()
        {
            return Err(CatalogError::UndefinedColumn {
                table: format!("{schema}.{name}"),
                column: c.to_owned(),
            }
            .into());
        }
        let set = |comments: &mut Comments| comments.set(column, text.clone());
        match relation.kind {
            RelationKind::Table => {
                let mut pointer = self.table_pointer(schema, name).await?;
                set(&mut pointer.comments);
                self.storage
                    .put_json(&layout::table_pointer(schema, name), &pointer)
                    .await?;
            }
            RelationKind::View => {
                let mut def = self.view_def(schema, name).await?;
                set(&mut def.comments);
                self.storage
                    .put_json(&layout::view_file(schema, name), &def)
                    .await?;
            }
            RelationKind::Source => return Err(raw_source(schema, name)),
            RelationKind::System => return Err(system_table(schema, name)),
        }
        self.refresh().await
    }

    async fn table_pointer(&self, schema: &str, name: &str) -> Result<TablePointer> {
        self.storage
            .get_json(&layout::table_pointer(schema, name))
            .await?
            .ok_or_else(|| CatalogError::UndefinedTable(format!("{schema}.{name}")).into())
    }

    async fn view_def(&self, schema: &str, name: &str) -> Result<ViewDef> {
        self.storage
            .get_json(&layout::view_file(schema, name))
            .await?
            .ok_or_else(|| CatalogError::UndefinedTable(format!("{schema}.{name}")).into())
    }
}

/// The refusal to change a table of the `system` schema.
pub fn system_table(schema: &str, name: &str) -> Error {
    CatalogError::ReadOnly(format!(
        "{schema}.{name} is a system table; profiledb maintains it"
    ))
    .into()
}

fn raw_source(schema: &str, name: &str) -> Error {
    CatalogError::ReadOnly(format!(
        "{schema}.{name} is a raw source in the landing zone; profiledb does not alter it"
    ))
    .into()
}
