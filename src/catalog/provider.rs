//! DataFusion's view of the catalog: one catalog (`profiledb`) whose schemas
//! are the snapshot's, plus `pg_catalog`. Lookups read the current snapshot,
//! so a refresh is visible to the next statement of every session.

use std::sync::Arc;

use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::common::exec_err;
use datafusion::error::Result;

use super::Catalog;
use super::information_schema::InformationSchema;
use super::pg_catalog::PgCatalogSchema;

#[derive(Debug)]
pub struct ProfileCatalogProvider {
    catalog: Arc<Catalog>,
}

impl ProfileCatalogProvider {
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self { catalog }
    }
}

impl CatalogProvider for ProfileCatalogProvider {
    fn schema_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.catalog.snapshot().schemas.keys().cloned().collect();
        names.extend(super::SYSTEM_SCHEMAS.map(str::to_owned));
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == "pg_catalog" {
            return Some(Arc::new(PgCatalogSchema::new(Arc::clone(&self.catalog))));
        }
        if name == "information_schema" {
            return Some(Arc::new(InformationSchema::new(Arc::clone(&self.catalog))));
        }
        self.catalog.snapshot().schemas.contains_key(name).then(|| {
            Arc::new(ProfileSchemaProvider {
                catalog: Arc::clone(&self.catalog),
                schema: name.to_owned(),
            }) as Arc<dyn SchemaProvider>
        })
    }

    fn register_schema(
        &self,
        name: &str,
        _schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        exec_err!("schema {name} must be created with CREATE SCHEMA through profiledb")
    }
}

#[derive(Debug)]
pub struct ProfileSchemaProvider {
    catalog: Arc<Catalog>,
    schema: String,
}

#[async_trait::async_trait]
impl SchemaProvider for ProfileSchemaProvider {
    fn table_names(&self) -> Vec<String> {
        self.catalog
            .snapshot()
            .schemas
            .get(&self.schema)
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(self
            .catalog
            .snapshot()
            .relation(&self.schema, name)
            .map(|r| Arc::clone(&r.provider)))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.catalog
            .snapshot()
            .relation(&self.schema, name)
            .is_some()
    }
}
