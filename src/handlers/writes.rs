//! Rows a handler hands over instead of writing them itself ([`super::Handler::writes`]).
//!
//! Under load a group commit costs its round trips, not its rows: on PostgreSQL a batch whose
//! handlers run their own statements pays BEGIN, the dedupe insert, one statement per handler
//! and COMMIT. A handler that says *what* it wants written lets the store write the whole
//! batch, dedupe records included, as one statement (`engine::store::statement`): one round
//! trip, whatever the batch holds, with the same all-or-nothing effect, since a statement is
//! atomic like the transaction it replaces.
//!
//! What can be said:
//! - rows to insert into a table ([`Rows::of`], from the entity's active models): a conflict
//!   on any unique key fails the whole batch, which is then redone event by event, as a
//!   failing statement does in the transaction path;
//! - an upsert on a key ([`Upsert`]): the conflicting row's columns replaced, a total added
//!   to, and a column the stored row must equal for the row to be touched at all (an order
//!   kept in one currency). A row so refused fails the batch too, and the redo, where the
//!   handler runs its own statements, finds which event is at fault and why.
//!
//! Everything a handler can decide from the events alone (a bad field, a rule two events of
//! the batch break together) it decides while building its rows, as an error, before anything
//! is sent.

use sea_orm::{ActiveModelTrait, EntityName, EntityTrait, Iden, Iterable, Value};

/// What the handlers of a batch want written, table by table, in the order given.
#[derive(Debug, Default)]
pub struct Writes {
    pub(crate) tables: Vec<Rows>,
}

impl Writes {
    /// Nothing to write (a handler with nothing to do for these events).
    pub fn none() -> Self {
        Self::default()
    }

    /// These writes and `rows` after them; a table without rows is left out.
    pub fn and(mut self, rows: Rows) -> Self {
        if !rows.is_empty() {
            self.tables.push(rows);
        }
        self
    }

    /// `other`'s tables after these.
    pub fn extend(&mut self, other: Writes) {
        self.tables.extend(other.tables);
    }
}

/// Rows for one table, column by column.
#[derive(Debug)]
pub struct Rows {
    pub(crate) table: String,
    pub(crate) columns: Vec<String>,
    /// One entry per column, each holding every row's value.
    pub(crate) values: Vec<Vec<Value>>,
    pub(crate) upsert: Option<Upsert>,
    /// A row left a column unset that another row sets: rows that cannot be written as one
    /// column list. The store then takes the transaction path, where the handler writes
    /// them itself.
    pub(crate) ragged: bool,
}

impl Rows {
    /// `models` as rows of their entity's table: the columns they set (`NotSet` columns get
    /// the table's default). Every model must set the same columns.
    pub fn of<A: ActiveModelTrait>(models: impl IntoIterator<Item = A>) -> Self {
        let mut columns: Vec<String> = Vec::new();
        let mut values: Vec<Vec<Value>> = Vec::new();
        // The first model's set columns, by their place in the entity: each other model must
        // set the same (compared by place, not by name: no string per row).
        let mut places: Vec<usize> = Vec::new();
        let mut ragged = false;
        for (n, mut model) in models.into_iter().enumerate() {
            let mut set = 0;
            for (place, column) in <A::Entity as EntityTrait>::Column::iter().enumerate() {
                let Some(value) = model.take(column).into_value() else {
                    continue;
                };
                if n == 0 {
                    places.push(place);
                    columns.push(column.to_string());
                    values.push(Vec::new());
                }
                match places.get(set) {
                    Some(&p) if p == place => values[set].push(value),
                    _ => ragged = true,
                }
                set += 1;
            }
            ragged |= set != places.len();
        }
        Self {
            table: A::Entity::default().table_name().to_owned(),
            columns,
            values,
            upsert: None,
            ragged,
        }
    }

    /// The rows as an upsert on `upsert.key`.
    pub fn upsert(mut self, upsert: Upsert) -> Self {
        self.upsert = Some(upsert);
        self
    }

    pub fn len(&self) -> usize {
        self.values.first().map_or(0, Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a row whose `key` is already in the table does instead of failing the batch. Each key
/// may appear once among the rows (an upsert touches a row once per statement): sum first.
#[derive(Debug, Clone)]
pub struct Upsert {
    /// The unique column the conflict is on.
    pub key: String,
    /// Columns set to the new row's values.
    pub replace: Vec<String>,
    /// A column the new row's value is added to; a total past `i64::MAX` refuses the row.
    pub adds_to: Option<String>,
    /// A column whose stored value must equal the new row's, or the row is refused.
    pub same: Option<String>,
}

impl Upsert {
    /// On a conflict on `key`, the stored row keeps its values except for the columns named
    /// by the other methods.
    pub fn on(key: impl Iden) -> Self {
        Self {
            key: key.to_string(),
            replace: Vec::new(),
            adds_to: None,
            same: None,
        }
    }

    pub fn replace(mut self, column: impl Iden) -> Self {
        self.replace.push(column.to_string());
        self
    }

    pub fn adds_to(mut self, column: impl Iden) -> Self {
        self.adds_to = Some(column.to_string());
        self
    }

    pub fn only_if_same(mut self, column: impl Iden) -> Self {
        self.same = Some(column.to_string());
        self
    }

    /// Whether the upsert may refuse a row (the batch then fails).
    pub(crate) fn may_refuse(&self) -> bool {
        self.adds_to.is_some() || self.same.is_some()
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::ActiveValue::{NotSet, Set};

    use super::*;
    use crate::entities::{inbox, order};

    fn inbox_row(id: &str) -> inbox::ActiveModel {
        inbox::ActiveModel {
            key_digest: Set(id.as_bytes().to_vec()),
            source: Set("s".into()),
            event_type: Set("t".into()),
            event_id: Set(id.into()),
            payload: Set(b"{}".to_vec()),
            received_at: Set(chrono::Utc::now()),
            ..Default::default()
        }
    }

    #[test]
    fn rows_are_read_column_by_column_leaving_unset_columns_to_the_table() {
        let rows = Rows::of([inbox_row("a"), inbox_row("b")]);
        assert_eq!(rows.table, "inbox");
        assert!(
            !rows.columns.contains(&"id".to_owned()),
            "{:?}",
            rows.columns
        );
        assert_eq!(rows.len(), 2);
        assert!(!rows.ragged);
        let ids = rows.columns.iter().position(|c| c == "event_id").unwrap();
        assert_eq!(
            rows.values[ids],
            vec![Value::from("a".to_owned()), Value::from("b".to_owned())]
        );
    }

    #[test]
    fn rows_setting_different_columns_are_ragged() {
        let mut odd = inbox_row("b");
        odd.payload = NotSet;
        assert!(Rows::of([inbox_row("a"), odd]).ragged);
        let mut odd = inbox_row("a");
        odd.payload = NotSet;
        assert!(Rows::of([odd, inbox_row("b")]).ragged);
    }

    #[test]
    fn empty_rows_are_left_out() {
        let writes = Writes::none().and(Rows::of(Vec::<order::ActiveModel>::new()));
        assert!(writes.tables.is_empty());
    }
}
