//! SQL-level prepared statements: `PREPARE s FROM '…'`, `EXECUTE s USING @a, @b`,
//! `DEALLOCATE PREPARE s`. Each execution runs as the statement's text with the variables'
//! values written in (`engine::literal`), planned like any other statement.

use std::sync::Arc;

use frontend::{Handler as _, ResultWriter, SqlError};
use planner::{Literal, LiteralKind, SqlPrepared};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

use crate::error;
use crate::prepared::PreparedStatement;

use super::{GateSession, StatementError};

impl GateSession {
    pub(super) async fn sql_prepared(
        &mut self,
        statement: SqlPrepared,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), StatementError> {
        match statement {
            SqlPrepared::Prepare {
                name,
                text,
                from_variable,
            } => {
                let text = if from_variable {
                    self.variable_text(&text).await?
                } else {
                    text
                };
                let text = self.resolve_comments(&text).into_owned();
                let text = text.trim().trim_end_matches(';').trim_end();
                self.check_backslashes(text)?;
                if planner::sql_prepared(text).is_some() {
                    return Err(error::not_preparable().into());
                }
                // MySQL checks the statement when it is prepared.
                Parser::parse_sql(&MySqlDialect {}, text).map_err(|e| error::unparsed(text, e))?;
                self.named_statements
                    .insert(name, Arc::new(PreparedStatement::new(text)));
                out.set_status(self.status());
                let info = frontend::OkInfo {
                    info: "Statement prepared".into(),
                    ..Default::default()
                };
                Ok(out.ok(&info).await?)
            }
            SqlPrepared::Execute { name, using } => {
                let stmt = self
                    .named_statements
                    .get(&name)
                    .cloned()
                    .ok_or_else(|| error::unknown_prepared(&name, "EXECUTE"))?;
                if using.len() != stmt.params {
                    return Err(error::wrong_execute_arguments().into());
                }
                let params: Vec<Literal> = using.iter().map(|v| self.variable(v)).collect();
                let text = stmt.text_with(&params)?;
                Box::pin(self.statement(&text, out)).await
            }
            SqlPrepared::Deallocate { name } => {
                self.named_statements
                    .remove(&name)
                    .ok_or_else(|| error::unknown_prepared(&name, "DEALLOCATE PREPARE"))?;
                self.ok(out).await
            }
        }
    }

    /// A user variable's value as the literal the session holds (NULL when it was never set).
    fn variable(&self, name: &str) -> Literal {
        let sql = self
            .session
            .settings
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or_else(|| "NULL".to_string(), |(_, v)| v.clone());
        let kind = if sql == "NULL" {
            LiteralKind::Null
        } else if sql.parse::<f64>().is_ok() {
            LiteralKind::Number
        } else {
            LiteralKind::Other
        };
        Literal { sql, kind }
    }

    /// The text a user variable holds (`PREPARE s FROM @sql`).
    async fn variable_text(&self, name: &str) -> Result<String, SqlError> {
        let (_, rows) = self.backend_statement(&format!("SELECT {name}")).await?;
        match rows.first().and_then(|r| r.first()) {
            Some(engine::Value::Bytes(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
            _ => Err(error::syntax(format!("{name} holds no statement"))),
        }
    }
}
