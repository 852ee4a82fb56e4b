//! A table as a binlog's table map describes it: what each column of a row image holds.

use mysql_common::binlog::events::{OptionalMetaExtractor, OptionalMetadataField, TableMapEvent};
use mysql_common::binlog::row::BinlogRow;
use mysql_common::binlog::value::BinlogValue;
use mysql_common::constants::ColumnType;
use mysql_common::value::Value;

use crate::ChangeStreamError;

/// One column of a row image. Names and ENUM/SET members come from the table map's full
/// metadata (`binlog_row_metadata = FULL`), which the stream requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMeta {
    pub name: String,
    /// The binlog's type: `MYSQL_TYPE_TIMESTAMP2`, `MYSQL_TYPE_DATETIME2`, `MYSQL_TYPE_ENUM`...
    pub kind: ColumnType,
    pub unsigned: bool,
    /// The collation id of a text, ENUM or SET column (63: binary); 0 for other types.
    pub collation: u16,
    /// An ENUM's or SET's members, in order.
    pub members: Vec<Vec<u8>>,
}

/// A table whose rows a stream carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub schema: String,
    pub name: String,
    pub columns: Vec<ColumnMeta>,
    /// The primary key's columns in the key's order; empty when the table has none.
    pub primary_key: Vec<usize>,
}

impl Table {
    pub(crate) fn from_map(tme: &TableMapEvent<'_>) -> Result<Table, ChangeStreamError> {
        let bad = |what: String| ChangeStreamError::Event(what);
        let meta = OptionalMetaExtractor::new(tme.iter_optional_meta())
            .map_err(|e| bad(format!("table map metadata: {e}")))?;
        let mut names = meta.iter_column_name();
        let mut signedness = meta.iter_signedness();
        let mut charsets = meta.iter_charset();
        let mut enum_set_charsets = meta.iter_enum_and_set_charset();
        let (mut enums, mut sets) = (Vec::new(), Vec::new());
        for field in tme.iter_optional_meta() {
            match field.map_err(|e| bad(format!("table map metadata: {e}")))? {
                OptionalMetadataField::EnumStrValue(values) => {
                    for members in values.iter_values() {
                        let members = members.map_err(|e| bad(format!("ENUM members: {e}")))?;
                        enums.push(
                            members
                                .values()
                                .iter()
                                .map(|v| v.value_raw().to_vec())
                                .collect(),
                        );
                    }
                }
                OptionalMetadataField::SetStrValue(values) => {
                    for members in values.iter_values() {
                        let members = members.map_err(|e| bad(format!("SET members: {e}")))?;
                        sets.push(
                            members
                                .values()
                                .iter()
                                .map(|v| v.value_raw().to_vec())
                                .collect(),
                        );
                    }
                }
                _ => {}
            }
        }
        let (mut enums, mut sets) = (enums.into_iter(), sets.into_iter());
        let schema = tme.database_name().into_owned();
        let table = tme.table_name().into_owned();
        let mut columns = Vec::new();
        for i in 0..tme.columns_count() as usize {
            let kind = tme
                .get_column_type(i)
                .map_err(|e| bad(format!("{schema}.{table} column {i}: {e}")))?
                .ok_or_else(|| bad(format!("{schema}.{table} column {i} has no type")))?;
            let name = names
                .next()
                .transpose()
                .map_err(|e| bad(format!("column names: {e}")))?
                .map(|n| n.name().into_owned())
                .ok_or_else(|| {
                    ChangeStreamError::Settings(format!(
                        "the binlog does not name {schema}.{table}'s columns: set \
                         binlog_row_metadata = FULL"
                    ))
                })?;
            let unsigned = kind.is_numeric_type() && signedness.next().unwrap_or(false);
            let collation = if kind.is_character_type() {
                charsets
                    .next()
                    .transpose()
                    .map_err(|e| bad(format!("charsets: {e}")))?
            } else if kind.is_enum_or_set_type() {
                enum_set_charsets
                    .next()
                    .transpose()
                    .map_err(|e| bad(format!("charsets: {e}")))?
            } else {
                None
            }
            .unwrap_or(0);
            let members = match kind {
                ColumnType::MYSQL_TYPE_ENUM => enums.next().unwrap_or_default(),
                ColumnType::MYSQL_TYPE_SET => sets.next().unwrap_or_default(),
                _ => Vec::new(),
            };
            columns.push(ColumnMeta {
                name,
                kind,
                unsigned,
                collation,
                members,
            });
        }
        let primary_key = meta
            .iter_primary_key()
            .map(|k| {
                k.ok()
                    .and_then(|k| usize::try_from(k).ok())
                    .filter(|k| *k < columns.len())
                    .ok_or_else(|| bad(format!("{schema}.{table}'s primary key metadata")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Table {
            schema,
            name: table,
            columns,
            primary_key,
        })
    }

    /// A row image's values, one per column: the whole row (`binlog_row_image = FULL`).
    pub(crate) fn values(&self, row: BinlogRow) -> Result<Vec<Value>, ChangeStreamError> {
        if row.len() != self.columns.len() {
            return Err(ChangeStreamError::Settings(format!(
                "a row image of {}.{} holds {} of its {} columns: set binlog_row_image = FULL",
                self.schema,
                self.name,
                row.len(),
                self.columns.len()
            )));
        }
        row.unwrap()
            .into_iter()
            .map(|v| match v {
                BinlogValue::Value(v) => Ok(v),
                // MySQL's JSON: its binary form, as the text a client would read.
                BinlogValue::Jsonb(jsonb) => {
                    let json = serde_json::Value::try_from(jsonb)
                        .map_err(|e| ChangeStreamError::Event(format!("a JSON value: {e}")))?;
                    Ok(Value::Bytes(json.to_string().into_bytes()))
                }
                BinlogValue::JsonDiff(_) => Err(ChangeStreamError::Settings(
                    "a partial JSON update: set binlog_row_value_options = ''".into(),
                )),
            })
            .collect()
    }
}
