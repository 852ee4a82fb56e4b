//! The differ against a real MariaDB: for each kind of change, two databases get the same
//! tables, one of them (the branch) is changed, and the diff computed from both servers'
//! `SHOW CREATE TABLE` is applied to the other (main). Main must then describe its tables as the
//! branch does, and the diff must have used the statement the change calls for.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use schemadiff::{diff, Schema};

/// A kind of change: the tables both databases start with, what the branch runs, and a clause
/// the diff must contain.
struct Case {
    name: &'static str,
    base: &'static [&'static str],
    change: &'static [&'static str],
    expect: &'static str,
}

const T: &str = "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, a INT, b VARCHAR(20), c TEXT, d DECIMAL(10,2) DEFAULT 0, KEY ka (a), KEY kb (b))";

macro_rules! case {
    ($name:expr, [$($base:expr),*], [$($change:expr),*], $expect:expr) => {
        Case { name: $name, base: &[$($base),*], change: &[$($change),*], expect: $expect }
    };
}

fn cases() -> Vec<Case> {
    vec![
        case!("add a column at the end", [T], ["ALTER TABLE t ADD COLUMN e INT"], "ADD COLUMN `e` INT(11) DEFAULT NULL AFTER `d`"),
        case!("add a column first", [T], ["ALTER TABLE t ADD COLUMN e INT FIRST"], "ADD COLUMN `e` INT(11) DEFAULT NULL FIRST"),
        case!("add a column in the middle", [T], ["ALTER TABLE t ADD COLUMN e INT AFTER a"], "AFTER `a`"),
        case!("add two columns", [T], ["ALTER TABLE t ADD COLUMN e INT, ADD COLUMN f DATE AFTER id"], "ADD COLUMN `f` DATE"),
        case!("drop a column", [T], ["ALTER TABLE t DROP COLUMN c"], "DROP COLUMN `c`"),
        case!("drop two columns", [T], ["ALTER TABLE t DROP COLUMN c, DROP COLUMN d"], "DROP COLUMN `d`"),
        case!("widen an integer", [T], ["ALTER TABLE t MODIFY a BIGINT"], "MODIFY COLUMN `a` BIGINT(20)"),
        case!("widen a varchar", [T], ["ALTER TABLE t MODIFY b VARCHAR(200)"], "VARCHAR(200)"),
        case!("make a column NOT NULL", [T], ["ALTER TABLE t MODIFY a INT NOT NULL"], "MODIFY COLUMN `a` INT(11) NOT NULL"),
        case!("make a column nullable", ["CREATE TABLE t (id INT PRIMARY KEY, a INT NOT NULL)"], ["ALTER TABLE t MODIFY a INT NULL"], "MODIFY COLUMN `a`"),
        case!("add a default", [T], ["ALTER TABLE t ALTER a SET DEFAULT 7"], "DEFAULT 7"),
        case!("change a default", [T], ["ALTER TABLE t ALTER d SET DEFAULT 1.5"], "DEFAULT 1.50"),
        case!("drop a default", [T], ["ALTER TABLE t MODIFY d DECIMAL(10,2)"], "MODIFY COLUMN `d`"),
        case!("comment a column", [T], ["ALTER TABLE t MODIFY a INT COMMENT 'the a'"], "COMMENT 'the a'"),
        case!("change a column's character set", [T], ["ALTER TABLE t MODIFY b VARCHAR(20) CHARACTER SET latin1"], "CHARACTER SET latin1"),
        case!("change a column's collation", [T], ["ALTER TABLE t MODIFY b VARCHAR(20) COLLATE utf8mb4_bin"], "COLLATE utf8mb4_bin"),
        case!("move a column first", [T], ["ALTER TABLE t MODIFY c TEXT FIRST"], "FIRST"),
        case!("swap two columns", [T], ["ALTER TABLE t MODIFY a INT AFTER b"], "MODIFY COLUMN `b`"),
        case!("rename a column's case", [T], ["ALTER TABLE t CHANGE a A INT"], "CHANGE COLUMN `a` `A`"),
        case!("make a column unsigned", [T], ["ALTER TABLE t MODIFY a INT UNSIGNED"], "UNSIGNED"),
        case!("add auto_increment", ["CREATE TABLE t (id INT NOT NULL, PRIMARY KEY (id))"], ["ALTER TABLE t MODIFY id INT NOT NULL AUTO_INCREMENT"], "AUTO_INCREMENT"),
        case!("add an enum member", ["CREATE TABLE t (id INT PRIMARY KEY, e ENUM('a','b'))"], ["ALTER TABLE t MODIFY e ENUM('a','b','c')"], "'c'"),
        case!("change a set", ["CREATE TABLE t (id INT PRIMARY KEY, s SET('x','y'))"], ["ALTER TABLE t MODIFY s SET('x','y','z') NOT NULL"], "SET("),
        case!("decimal precision", [T], ["ALTER TABLE t MODIFY d DECIMAL(12,4) DEFAULT 0"], "DECIMAL(12,4)"),
        case!("timestamp defaults", ["CREATE TABLE t (id INT PRIMARY KEY)"], ["ALTER TABLE t ADD ts TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP"], "ON UPDATE current_timestamp()"),
        case!("datetime precision", ["CREATE TABLE t (id INT PRIMARY KEY, at DATETIME)"], ["ALTER TABLE t MODIFY at DATETIME(6)"], "DATETIME(6)"),
        case!("a virtual generated column", [T], ["ALTER TABLE t ADD g INT AS (a + 1) VIRTUAL"], "VIRTUAL"),
        case!("a stored generated column", [T], ["ALTER TABLE t ADD g INT AS (a * 2) STORED"], "STORED"),
        case!("change a generated expression", ["CREATE TABLE t (id INT PRIMARY KEY, a INT, g INT AS (a + 1) VIRTUAL)"], ["ALTER TABLE t MODIFY g INT AS (a + 2) VIRTUAL"], "+ 2"),
        case!("an invisible column", [T], ["ALTER TABLE t ADD h INT INVISIBLE"], "INVISIBLE"),
        case!("a JSON column", [T], ["ALTER TABLE t ADD j JSON"], "json_valid"),
        case!("a bit column with a default", [T], ["ALTER TABLE t ADD f BIT(3) DEFAULT b'101'"], "BIT(3)"),
        case!("an expression default", [T], ["ALTER TABLE t ADD u VARCHAR(36) DEFAULT (uuid())"], "uuid()"),
        case!("add an index", [T], ["ALTER TABLE t ADD INDEX kd (d)"], "ADD KEY `kd` (`d`)"),
        case!("drop an index", [T], ["ALTER TABLE t DROP INDEX ka"], "DROP INDEX `ka`"),
        case!("change an index's columns", [T], ["ALTER TABLE t DROP INDEX ka, ADD INDEX ka (a, b)"], "ADD KEY `ka` (`a`, `b`)"),
        case!("rename an index", [T], ["ALTER TABLE t RENAME INDEX ka TO ka2"], "ADD KEY `ka2`"),
        case!("add a unique key", [T], ["ALTER TABLE t ADD UNIQUE KEY ud (d)"], "ADD UNIQUE KEY `ud`"),
        case!("a unique key made plain", ["CREATE TABLE t (id INT PRIMARY KEY, a INT, UNIQUE KEY ua (a))"], ["ALTER TABLE t DROP INDEX ua, ADD INDEX ua (a)"], "ADD KEY `ua`"),
        case!("a prefix index", [T], ["ALTER TABLE t ADD INDEX kc (c(10))"], "(`c`(10))"),
        case!("a descending index", [T], ["ALTER TABLE t ADD INDEX kdd (d DESC)"], "DESC"),
        case!("a fulltext index", [T], ["ALTER TABLE t ADD FULLTEXT INDEX ft (c)"], "ADD FULLTEXT KEY `ft`"),
        case!("a spatial index", ["CREATE TABLE t (id INT PRIMARY KEY, p POINT NOT NULL)"], ["ALTER TABLE t ADD SPATIAL INDEX sp (p)"], "SPATIAL"),
        case!("add a primary key", ["CREATE TABLE t (id INT NOT NULL, a INT)"], ["ALTER TABLE t ADD PRIMARY KEY (id)"], "ADD PRIMARY KEY (`id`)"),
        case!("drop a primary key", ["CREATE TABLE t (id INT NOT NULL, a INT, PRIMARY KEY (id))"], ["ALTER TABLE t DROP PRIMARY KEY"], "DROP PRIMARY KEY"),
        case!("change a primary key", ["CREATE TABLE t (id INT NOT NULL, a INT NOT NULL, PRIMARY KEY (id))"], ["ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (id, a)"], "ADD PRIMARY KEY (`id`, `a`)"),
        case!("add a foreign key", ["CREATE TABLE p (id INT PRIMARY KEY)", "CREATE TABLE t (id INT PRIMARY KEY, pid INT)"], ["ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (pid) REFERENCES p (id)"], "ADD CONSTRAINT `fk` FOREIGN KEY"),
        case!("drop a foreign key", ["CREATE TABLE p (id INT PRIMARY KEY)", "CREATE TABLE t (id INT PRIMARY KEY, pid INT, CONSTRAINT fk FOREIGN KEY (pid) REFERENCES p (id))"], ["ALTER TABLE t DROP FOREIGN KEY fk"], "DROP FOREIGN KEY `fk`"),
        case!("change a foreign key's action", ["CREATE TABLE p (id INT PRIMARY KEY)", "CREATE TABLE t (id INT PRIMARY KEY, pid INT, CONSTRAINT fk FOREIGN KEY (pid) REFERENCES p (id))"], ["ALTER TABLE t DROP FOREIGN KEY fk", "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (pid) REFERENCES p (id) ON DELETE CASCADE"], "ON DELETE CASCADE"),
        case!("add a check", [T], ["ALTER TABLE t ADD CONSTRAINT pos CHECK (d >= 0)"], "ADD CONSTRAINT `pos` CHECK"),
        case!("drop a check", ["CREATE TABLE t (id INT PRIMARY KEY, d INT, CONSTRAINT pos CHECK (d >= 0))"], ["ALTER TABLE t DROP CONSTRAINT pos"], "DROP CONSTRAINT `pos`"),
        case!("change a check", ["CREATE TABLE t (id INT PRIMARY KEY, d INT, CONSTRAINT pos CHECK (d >= 0))"], ["ALTER TABLE t DROP CONSTRAINT pos, ADD CONSTRAINT pos CHECK (d > 0)"], "CHECK (`d` > 0)"),
        case!("comment a table", [T], ["ALTER TABLE t COMMENT = 'the table'"], "COMMENT = 'the table'"),
        case!("uncomment a table", ["CREATE TABLE t (id INT PRIMARY KEY) COMMENT 'old'"], ["ALTER TABLE t COMMENT = ''"], "COMMENT = ''"),
        case!("convert a table's character set", [T], ["ALTER TABLE t CONVERT TO CHARACTER SET latin1"], "DEFAULT CHARSET = latin1"),
        case!("change a table's collation", [T], ["ALTER TABLE t DEFAULT COLLATE utf8mb4_unicode_ci"], "COLLATE = utf8mb4_unicode_ci"),
        case!("change the engine", [T], ["ALTER TABLE t ENGINE = MyISAM"], "ENGINE = MyISAM"),
        case!("change the row format", [T], ["ALTER TABLE t ROW_FORMAT = COMPRESSED"], "ROW_FORMAT = COMPRESSED"),
        case!("create a table", [T], ["CREATE TABLE n (id BIGINT PRIMARY KEY, v VARCHAR(5) NOT NULL DEFAULT '')"], "CREATE TABLE `n`"),
        case!("drop a table", [T, "CREATE TABLE old (id INT PRIMARY KEY)"], ["DROP TABLE old"], "DROP TABLE `old`"),
        case!("create tables that reference each other in order", [T], ["CREATE TABLE zparent (id INT PRIMARY KEY)", "CREATE TABLE achild (id INT PRIMARY KEY, pid INT, CONSTRAINT fkc FOREIGN KEY (pid) REFERENCES zparent (id))"], "CREATE TABLE `achild`"),
        case!("drop tables that reference each other in order", [T, "CREATE TABLE zparent (id INT PRIMARY KEY)", "CREATE TABLE achild (id INT PRIMARY KEY, pid INT, CONSTRAINT fkc FOREIGN KEY (pid) REFERENCES zparent (id))"], ["DROP TABLE achild", "DROP TABLE zparent"], "DROP TABLE `zparent`"),
        case!("add a column and an index on it, drop an old index", [T], ["ALTER TABLE t ADD COLUMN email VARCHAR(100) NOT NULL DEFAULT '' AFTER b, ADD INDEX kemail (email), DROP INDEX kb"], "ADD KEY `kemail`"),
        case!("drop a column an index covers", [T], ["ALTER TABLE t DROP COLUMN a"], "DROP INDEX `ka`"),
        case!("many changes at once", [T], ["ALTER TABLE t DROP COLUMN c, ADD COLUMN e INT FIRST, MODIFY b VARCHAR(40) NOT NULL DEFAULT 'x', DROP INDEX ka, ADD UNIQUE KEY ub (b), COMMENT 'x', MODIFY d DECIMAL(10,2) AFTER id"], "ADD UNIQUE KEY `ub`"),
    ]
}

async fn schema(conn: &mut Conn, db: &str) -> Schema {
    let tables: Vec<String> = conn
        .query(format!(
            "SHOW FULL TABLES FROM `{db}` WHERE Table_type = 'BASE TABLE'"
        ))
        .await
        .unwrap()
        .into_iter()
        .map(|(name, _): (String, String)| name)
        .collect();
    let mut texts = Vec::new();
    for table in tables {
        let row: Option<(String, String)> = conn
            .query_first(format!("SHOW CREATE TABLE `{db}`.`{table}`"))
            .await
            .unwrap();
        texts.push(row.unwrap().1);
    }
    Schema::parse(texts.iter().map(String::as_str)).unwrap()
}

async fn run(conn: &mut Conn, db: &str, statements: &[&str]) -> Result<(), String> {
    conn.query_drop(format!("USE `{db}`")).await.unwrap();
    for sql in statements {
        conn.query_drop(*sql)
            .await
            .map_err(|e| format!("{sql}: {e}"))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_diff_turns_main_into_the_branch_for_every_kind_of_change() {
    let server = tokio::task::spawn_blocking(|| testkit::start(1, &[]).unwrap().remove(0))
        .await
        .unwrap();
    let mut conn = Conn::new(Opts::from_url(&server.url("")).unwrap())
        .await
        .unwrap();
    let cases = cases();
    assert!(cases.len() >= 40, "{}", cases.len());
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let (main, branch) = (format!("main{i}"), format!("branch{i}"));
        for db in [&main, &branch] {
            conn.query_drop(format!(
                "CREATE DATABASE `{db}` DEFAULT CHARACTER SET utf8mb4"
            ))
            .await
            .unwrap();
            run(&mut conn, db, case.base).await.unwrap();
        }
        run(&mut conn, &branch, case.change).await.unwrap();
        let before = schema(&mut conn, &main).await;
        let want = schema(&mut conn, &branch).await;
        let ddl = diff(&before, &want);
        let statements: Vec<&str> = ddl.iter().map(|d| d.sql.as_str()).collect();
        let outcome = async {
            if !statements.iter().any(|s| s.contains(case.expect)) {
                return Err(format!("no {:?} in the diff", case.expect));
            }
            run(&mut conn, &main, &statements).await?;
            let after = schema(&mut conn, &main).await;
            let left = diff(&after, &want);
            if !left.is_empty() {
                return Err(format!("main still differs: {left:?}"));
            }
            // Columns in the same order, keys and options alike: the same descriptions, but
            // for AUTO_INCREMENT counters and the order the server lists indexes in.
            for (name, table) in &want.tables {
                let got = &after.tables[name];
                if got.columns != table.columns || got.options != table.options {
                    return Err(format!("{name}: {got:?}\nnot {table:?}"));
                }
            }
            Ok(())
        }
        .await;
        if let Err(why) = outcome {
            failures.push(format!("{}: {why}\n  diff: {statements:?}", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
