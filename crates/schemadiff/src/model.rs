//! A database's schema as `SHOW CREATE TABLE` describes it, parsed with sqlparser: each table's
//! columns in order, its indexes, foreign keys and checks by name, and its options, each part
//! rendered back from the AST so that two servers' descriptions compare as text.

use std::collections::BTreeMap;

use sqlparser::ast::{
    ColumnOption, ColumnOptionDef, CreateTable, CreateTableOptions, DataType, Expr, Ident,
    ObjectName, SqlOption, Statement, TableConstraint,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("could not parse SHOW CREATE TABLE output: {0}")]
    Parse(String),
    #[error("not one CREATE TABLE statement: {0}")]
    NotCreateTable(String),
}

/// A database's tables, by name (case-sensitive, as table names are on Linux).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    pub tables: BTreeMap<String, Table>,
}

impl Schema {
    /// The schema of these tables, each given as its `SHOW CREATE TABLE` text.
    pub fn parse<'a>(
        show_create_tables: impl IntoIterator<Item = &'a str>,
    ) -> Result<Schema, SchemaError> {
        let mut schema = Schema::default();
        for text in show_create_tables {
            let table = Table::parse(text)?;
            schema.tables.insert(table.name.clone(), table);
        }
        Ok(schema)
    }
}

/// One table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    /// In the table's order.
    pub columns: Vec<Column>,
    /// Indexes, the primary key among them (named `PRIMARY`).
    pub keys: Vec<Key>,
    /// `CONSTRAINT … FOREIGN KEY …`, by name.
    pub foreign_keys: Vec<Named>,
    /// `CONSTRAINT … CHECK (…)` at table level, by name.
    pub checks: Vec<Named>,
    /// Table options but `AUTO_INCREMENT` (a counter, not a schema property), as
    /// (upper-case name, rendered option).
    pub options: Vec<(String, String)>,
    /// The `CREATE TABLE` statement that makes this table, rendered from the AST.
    pub create: String,
}

/// A column: its name and its whole definition, rendered (`` `c` INT(11) NOT NULL ``). String
/// columns name their character set and collation even where the table's defaults make the
/// server leave them out, so a change of the table's default shows as a change of its columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub definition: String,
    /// Computed from other columns (`GENERATED ALWAYS AS`): never written.
    pub generated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Primary,
    Unique,
    Index,
    Fulltext,
    Spatial,
}

/// An index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// `PRIMARY` for the primary key.
    pub name: String,
    pub kind: KeyKind,
    /// The columns it covers, in order (a prefix index names its column).
    pub columns: Vec<String>,
    /// As in `ALTER TABLE … ADD <definition>`.
    pub definition: String,
}

/// A named constraint: its name, and its definition as in `ALTER TABLE … ADD <definition>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub name: String,
    pub definition: String,
    /// The table a foreign key references.
    pub references: Option<String>,
}

/// Whether two identifiers name the same column, index or constraint (MySQL compares those
/// without regard to case).
pub fn same_name(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// `name` as a quoted identifier.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

impl Table {
    /// A table from its `SHOW CREATE TABLE` text.
    pub fn parse(text: &str) -> Result<Table, SchemaError> {
        let mut statements = Parser::parse_sql(&MySqlDialect {}, text)
            .map_err(|e| SchemaError::Parse(format!("{e}: {text}")))?;
        let (1, Some(Statement::CreateTable(mut create))) = (statements.len(), statements.pop())
        else {
            return Err(SchemaError::NotCreateTable(text.to_string()));
        };
        // A counter, not the schema: a branch's tables would differ from main's by it.
        if let CreateTableOptions::Plain(options) = &mut create.table_options {
            options.retain(|o| option_name(o) != "AUTO_INCREMENT");
        }
        let options: Vec<(String, String)> = match &create.table_options {
            CreateTableOptions::Plain(options) => options
                .iter()
                .map(|o| (option_name(o), o.to_string()))
                .collect(),
            _ => Vec::new(),
        };
        let name = object_name(&create.name);
        let charset = option_value(&create, "DEFAULT CHARSET");
        let collation = option_value(&create, "COLLATE");
        let columns = create
            .columns
            .iter()
            .map(|c| {
                let mut c = c.clone();
                if is_text(&c.data_type) {
                    spell_out_charset(&mut c.options, charset.as_deref(), collation.as_deref());
                }
                Column {
                    name: c.name.value.clone(),
                    definition: c.to_string(),
                    generated: c
                        .options
                        .iter()
                        .any(|o| matches!(o.option, ColumnOption::Generated { .. })),
                }
            })
            .collect();
        let mut keys = Vec::new();
        let mut foreign_keys = Vec::new();
        let mut checks = Vec::new();
        for constraint in &create.constraints {
            let definition = constraint.to_string();
            let key = |name: Option<&Ident>, kind, columns: &[sqlparser::ast::IndexColumn]| Key {
                name: name.map_or_else(|| "PRIMARY".to_string(), |n| n.value.clone()),
                kind,
                columns: columns
                    .iter()
                    .filter_map(|c| column_of(&c.column.expr))
                    .collect(),
                definition: definition.clone(),
            };
            match constraint {
                TableConstraint::PrimaryKey(pk) => {
                    keys.push(key(None, KeyKind::Primary, &pk.columns))
                }
                TableConstraint::Unique(u) => keys.push(key(
                    u.index_name.as_ref().or(u.name.as_ref()),
                    KeyKind::Unique,
                    &u.columns,
                )),
                TableConstraint::Index(i) => {
                    keys.push(key(i.name.as_ref(), KeyKind::Index, &i.columns))
                }
                TableConstraint::FulltextOrSpatial(f) => keys.push(key(
                    f.opt_index_name.as_ref(),
                    if f.fulltext {
                        KeyKind::Fulltext
                    } else {
                        KeyKind::Spatial
                    },
                    &f.columns,
                )),
                TableConstraint::ForeignKey(fk) => foreign_keys.push(Named {
                    name: fk
                        .name
                        .as_ref()
                        .map(|n| n.value.clone())
                        .unwrap_or_default(),
                    definition,
                    references: Some(object_name(&fk.foreign_table)),
                }),
                TableConstraint::Check(check) => checks.push(Named {
                    name: check
                        .name
                        .as_ref()
                        .map(|n| n.value.clone())
                        .unwrap_or_default(),
                    definition,
                    references: None,
                }),
                other => {
                    return Err(SchemaError::Parse(format!(
                        "{name}: an unexpected constraint: {other}"
                    )))
                }
            }
        }
        Ok(Table {
            name,
            columns,
            keys,
            foreign_keys,
            checks,
            options,
            create: Statement::CreateTable(create).to_string(),
        })
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| same_name(&c.name, name))
    }

    pub fn key(&self, name: &str) -> Option<&Key> {
        self.keys.iter().find(|k| same_name(&k.name, name))
    }

    pub fn primary_key(&self) -> Option<&Key> {
        self.keys.iter().find(|k| k.kind == KeyKind::Primary)
    }

    pub fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, o)| o.as_str())
    }
}

fn object_name(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|part| part.as_ident())
        .map_or_else(|| name.to_string(), |ident| ident.value.clone())
}

/// The option's name, upper-case: `ENGINE`, `DEFAULT CHARSET`, `COMMENT`…
fn option_name(option: &SqlOption) -> String {
    match option {
        SqlOption::KeyValue { key, .. } => key.to_string().to_ascii_uppercase(),
        SqlOption::NamedParenthesizedList(list) => list.key.value.to_ascii_uppercase(),
        SqlOption::Comment(_) => "COMMENT".into(),
        other => {
            let text = other.to_string();
            let name = text.split(" =").next().unwrap_or(&text);
            name.trim().to_ascii_uppercase()
        }
    }
}

/// The value of a `name = value` table option.
fn option_value(create: &CreateTable, name: &str) -> Option<String> {
    let CreateTableOptions::Plain(options) = &create.table_options else {
        return None;
    };
    options.iter().find_map(|o| match o {
        SqlOption::KeyValue { key, value } if key.to_string().eq_ignore_ascii_case(name) => {
            Some(match value {
                Expr::Identifier(ident) => ident.value.clone(),
                other => other.to_string(),
            })
        }
        _ => None,
    })
}

fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Char(_)
            | DataType::Character(_)
            | DataType::Varchar(_)
            | DataType::CharVarying(_)
            | DataType::CharacterVarying(_)
            | DataType::Nvarchar(_)
            | DataType::Text
            | DataType::TinyText
            | DataType::MediumText
            | DataType::LongText
            | DataType::Enum(..)
            | DataType::Set(_)
    )
}

/// Names the table's character set (and collation, when the column takes the table's) on a
/// string column that the server described without them.
fn spell_out_charset(
    options: &mut Vec<ColumnOptionDef>,
    charset: Option<&str>,
    collation: Option<&str>,
) {
    let has = |options: &[ColumnOptionDef], f: fn(&ColumnOption) -> bool| {
        options.iter().any(|o| f(&o.option))
    };
    let named_charset = has(options, |o| matches!(o, ColumnOption::CharacterSet(_)));
    let named_collation = has(options, |o| matches!(o, ColumnOption::Collation(_)));
    let option = |option| ColumnOptionDef { name: None, option };
    let name = |s: &str| ObjectName::from(vec![Ident::new(s)]);
    if !named_charset {
        if let Some(charset) = charset {
            options.insert(0, option(ColumnOption::CharacterSet(name(charset))));
            if !named_collation {
                if let Some(collation) = collation {
                    options.insert(1, option(ColumnOption::Collation(name(collation))));
                }
            }
        }
    }
}

/// The column an index part names: `c`, or `c`(10) for a prefix.
fn column_of(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(ident) => Some(ident.value.clone()),
        Expr::Function(f) => Some(object_name(&f.name)),
        Expr::Nested(inner) => column_of(inner),
        _ => None,
    }
}
