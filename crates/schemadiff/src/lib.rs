//! Schemas compared: each table as `SHOW CREATE TABLE` describes it, parsed with sqlparser
//! ([`model`]); the DDL that turns one schema into another ([`diff`]); a branch's changes laid
//! over a main that changed meanwhile, or the changes of both that overlap ([`merge`]); and the
//! risks a change carries ([`lint`]).

pub mod diff;
pub mod model;

pub use diff::{diff, Ddl, DdlKind};
pub use model::{Column, Key, KeyKind, Named, Schema, SchemaError, Table};
