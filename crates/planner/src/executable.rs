//! Executable comments, `/*! … */`, `/*!NNNNN … */` and MariaDB's `/*M!NNNNNN … */`: SQL that a
//! server runs when its version is at least `NNNNN` (mysqldump opens with
//! `/*!40101 SET NAMES utf8mb4 */`). Both servers decide before parsing, in their lexer;
//! shardgate does the same, once, on the statement's text: [`resolve`] turns each executable
//! comment into either its body or a plain comment. Everything after (the parser, spans, the text
//! forwarded to shards) then works on one string, so no offset is ever applied to a text it was
//! not computed on.
//!
//! The markers are removed, as the servers' lexers remove them: a column named after its
//! expression (`SELECT /*!32302 1+ */ 1` gives `1+  1`) is named as the server would name it.

use std::borrow::Cow;

use crate::text::{comment_end, skip_quoted};

/// Whose rules decide which executable comments run: the servers behind the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerKind {
    pub mariadb: bool,
    /// `major * 10000 + minor * 100 + patch`, as in the comments: 8.0.40 is 80040.
    pub version: u32,
}

impl ServerKind {
    /// What shardgate announces to its clients, for when no backend has answered yet.
    pub const MYSQL_8: ServerKind = ServerKind {
        mariadb: false,
        version: 80040,
    };

    pub fn new(mariadb: bool, (major, minor, patch): (u16, u16, u16)) -> Self {
        ServerKind {
            mariadb,
            version: u32::from(major) * 10000 + u32::from(minor) * 100 + u32::from(patch),
        }
    }

    /// Whether a comment with this version runs. MariaDB does not run `/*!NNNNN` comments meant
    /// for MySQL 5.7 and later (50700 to 99999): their syntax is MySQL's, not its own. MySQL
    /// ignores the `/*M!` form altogether.
    fn runs(&self, version: Option<u32>, mariadb_form: bool) -> bool {
        let Some(version) = version else {
            return !mariadb_form || self.mariadb;
        };
        if version > self.version {
            return false;
        }
        if self.mariadb {
            mariadb_form || !(50700..=99999).contains(&version)
        } else {
            !mariadb_form
        }
    }
}

/// `sql` with its executable comments resolved for `server`: the body of one that runs stays,
/// without the comment's markers; one that does not run becomes a plain comment. Borrowed when
/// there is none (the common case, found without allocating).
pub fn resolve(sql: &str, server: ServerKind) -> Cow<'_, str> {
    if !sql.contains("/*") {
        return Cow::Borrowed(sql);
    }
    let b = sql.as_bytes();
    // The text so far, up to byte `copied` of `sql`, once a marker has been left out.
    let mut out = String::new();
    let mut copied = 0;
    let mut cut = |out: &mut String, range: std::ops::Range<usize>| {
        out.push_str(&sql[copied..range.start]);
        copied = range.end;
    };
    // Inside the body of an executable comment that runs: its `*/` is blanked too.
    let mut in_body = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'*' if in_body && b.get(i + 1) == Some(&b'/') => {
                cut(&mut out, i..i + 2);
                in_body = false;
                i += 2;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mariadb_form = b.get(i + 2) == Some(&b'M') && b.get(i + 3) == Some(&b'!');
                let bang = if mariadb_form { i + 3 } else { i + 2 };
                if in_body || b.get(bang) != Some(&b'!') {
                    // A plain comment (MySQL does not nest them, nor executable ones).
                    i = comment_end(b, i).unwrap_or(b.len());
                    continue;
                }
                let digits = b[bang + 1..]
                    .iter()
                    .take(6)
                    .take_while(|c| c.is_ascii_digit())
                    .count();
                // Five digits, or six (MariaDB's versions, and MySQL's since 8.0.34).
                let (version, marker_end) = match digits {
                    5 | 6 => {
                        let text = &sql[bang + 1..bang + 1 + digits];
                        (text.parse().ok(), bang + 1 + digits)
                    }
                    _ => (None, bang + 1),
                };
                if server.runs(version, mariadb_form) {
                    cut(&mut out, i..marker_end);
                    in_body = true;
                    i = marker_end;
                } else {
                    // `/*` stays and `!`/`M!` go: a plain comment to the parser and the shards.
                    cut(&mut out, i + 2..bang + 1);
                    i = comment_end(b, i).unwrap_or(b.len());
                }
            }
            _ => i = skip_quoted(b, i).unwrap_or(i + 1),
        }
    }
    if copied == 0 {
        return Cow::Borrowed(sql);
    }
    out.push_str(&sql[copied..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARIADB: ServerKind = ServerKind {
        mariadb: true,
        version: 101119,
    };

    #[test]
    fn bodies_run_by_version() {
        let mysql = ServerKind::MYSQL_8;
        for (sql, server, resolved) in [
            (
                "/*!40100 SET @@SQL_MODE='' */",
                mysql,
                " SET @@SQL_MODE='' ",
            ),
            ("SELECT 1 /*!90000 +1 */", mysql, "SELECT 1 /*90000 +1 */"),
            ("SELECT 1 /*!80040 +1*/", mysql, "SELECT 1  +1"),
            ("SELECT 1 /*!+1*/", mysql, "SELECT 1 +1"),
            ("SELECT /*!32302 1+ */ 1", mysql, "SELECT  1+  1"),
            ("/*M!100100 SELECT 1 */", mysql, "/*100100 SELECT 1 */"),
            ("/*M!100100 SELECT 1 */", MARIADB, " SELECT 1 "),
            ("/*M!110000 SELECT 1 */", MARIADB, "/*110000 SELECT 1 */"),
            // MySQL 5.7+ comments are not MariaDB's; older and MariaDB-versioned ones are.
            ("SELECT 1 /*!80041 +1 */", MARIADB, "SELECT 1 /*80041 +1 */"),
            ("SELECT 1 /*!50600 +1 */", MARIADB, "SELECT 1  +1 "),
            ("SELECT 1 /*!100000 +1 */", MARIADB, "SELECT 1  +1 "),
        ] {
            assert_eq!(resolve(sql, server), resolved, "{sql} on {server:?}");
        }
    }

    #[test]
    fn strings_and_plain_comments_are_left_alone() {
        let mysql = ServerKind::MYSQL_8;
        for sql in [
            "SELECT '/*!40100 x */'",
            "SELECT 1 /* /*!40100 x */",
            "SELECT 1 -- /*!40100 x */",
            "SELECT `/*!a*/`",
            "SELECT 1",
        ] {
            assert!(
                matches!(resolve(sql, mysql), Cow::Borrowed(s) if s == sql),
                "{sql}"
            );
        }
        // A `*/` in a string of the body does not end the comment.
        assert_eq!(resolve("/*!40101 SET @a='*/' */", mysql), " SET @a='*/' ");
    }
}
