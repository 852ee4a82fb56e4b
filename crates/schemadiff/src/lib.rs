//! Schemas compared: each table as `SHOW CREATE TABLE` describes it, parsed with sqlparser
//! ([`model`]); the DDL that turns one schema into another ([`diff`]); a branch's changes laid
//! over a main that changed meanwhile, or the changes of both that overlap ([`merge`]); and the
//! risks a change carries ([`lint`]).

pub mod diff;
pub mod lint;
pub mod merge;
pub mod model;

pub use diff::{diff, Ddl, DdlKind};
pub use lint::{lint, Context, Finding, Severity};
pub use merge::{three_way, Conflict, Part};
pub use model::{Column, Key, KeyKind, Named, Schema, SchemaError, Table};

#[cfg(test)]
mod tests;
