//! `COMMENT ON` text, stored with the object it describes (a table's
//! pointer, a view's definition), so it lives exactly as long as the object:
//! it follows a rename, survives new versions of a table, and goes with a
//! drop. `pg_description`, `obj_description` and `col_description` read it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comments {
    /// On the table or view itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
    /// On its columns, by column name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, String>,
}

impl Comments {
    pub fn is_empty(&self) -> bool {
        self.relation.is_none() && self.columns.is_empty()
    }

    /// Sets the comment on the relation, or on one of its columns; `None`
    /// or an empty text removes it, as in PostgreSQL.
    pub fn set(&mut self, column: Option<&str>, text: Option<String>) {
        let text = text.filter(|t| !t.is_empty());
        match (column, text) {
            (None, text) => self.relation = text,
            (Some(c), Some(text)) => {
                self.columns.insert(c.to_owned(), text);
            }
            (Some(c), None) => {
                self.columns.remove(c);
            }
        }
    }

    /// Keeps only the comments of columns `keep` accepts.
    pub fn retain_columns(&mut self, keep: impl Fn(&str) -> bool) {
        self.columns.retain(|c, _| keep(c));
    }
}
