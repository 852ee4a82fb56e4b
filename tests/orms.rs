//! Applications as they are: tables an ORM creates that the VSchema does not list
//! (`unlisted_tables`), global routing of unqualified names, `information_schema` and SHOW over a
//! keyspace and its unlisted tables, and real ORMs' migration tools and CRUD through shardgate.
//!
//! One set of servers for this binary: keyspace `ut` (2 shards, its unlisted tables in `ut_meta`,
//! whose database is named otherwise), `plain` (2 shards, no unlisted tables), and per ORM a
//! sharded keyspace with its unlisted tables in `<orm>_meta`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

struct Cluster {
    servers: Vec<testkit::MariaDb>,
    config: vschema::Config,
}

/// The ORMs' keyspaces: each sharded, with its unlisted tables in `<name>_meta`.
const ORMS: &[&str] = &["dj", "al", "rails", "sq", "ty", "kx", "so"];

/// Tables each ORM keyspace's VSchema shards (their ids come from sequences in `<orm>_meta`).
fn orm_tables(orm: &str) -> String {
    format!(
        r#"vindexes.hash = {{ type = "hash" }}
tables.{orm}_author = {{ primary_vindex = {{ column = "id", vindex = "hash" }}, auto_increment = {{ column = "id", sequence = "{orm}_meta.{orm}_author_seq" }} }}
tables.{orm}_book = {{ primary_vindex = {{ column = "author_id", vindex = "hash" }}, auto_increment = {{ column = "id", sequence = "{orm}_meta.{orm}_book_seq" }} }}
"#
    )
}

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let mut databases = vec!["ut", "ut_meta_db", "plain"];
        let metas: Vec<String> = ORMS.iter().map(|o| format!("{o}_meta")).collect();
        databases.extend(ORMS);
        databases.extend(metas.iter().map(String::as_str));
        let servers = testkit::start(3, &databases).expect("start MariaDB");
        let url = |i: usize, db: &str| servers[i].url(db);
        let mut text = format!(
            r#"[server]
listen = "127.0.0.1:0"

[[users]]
name = "app"
password = "secret"

[[users]]
name = "ut_only"
password = "pw"
keyspaces = ["ut"]

[keyspaces.ut]
sharded = true
unlisted_tables = "ut_meta"
shards = [{{ name = "-80", primary = "{u0}" }}, {{ name = "80-", primary = "{u1}" }}]
vindexes.hash = {{ type = "hash" }}
tables.sharded_t = {{ primary_vindex = {{ column = "id", vindex = "hash" }} }}

[keyspaces.ut_meta]
sharded = false
shards = [{{ name = "0", primary = "{um}" }}]
tables.listed_here = {{ type = "sequence" }}

[keyspaces.plain]
sharded = true
shards = [{{ name = "-80", primary = "{p0}" }}, {{ name = "80-", primary = "{p1}" }}]
vindexes.hash = {{ type = "hash" }}
tables.p = {{ primary_vindex = {{ column = "id", vindex = "hash" }} }}
"#,
            u0 = url(0, "ut"),
            u1 = url(1, "ut"),
            um = url(2, "ut_meta_db"),
            p0 = url(0, "plain"),
            p1 = url(1, "plain"),
        );
        for orm in ORMS {
            text.push_str(&format!(
                r#"
[keyspaces.{orm}]
sharded = true
unlisted_tables = "{orm}_meta"
pool = {{ min = 1, max = 16 }}
shards = [{{ name = "-80", primary = "{s0}" }}, {{ name = "80-", primary = "{s1}" }}]
{tables}
[keyspaces.{orm}_meta]
sharded = false
pool = {{ min = 1, max = 16 }}
shards = [{{ name = "0", primary = "{m}" }}]
tables.{orm}_author_seq = {{ type = "sequence" }}
tables.{orm}_book_seq = {{ type = "sequence" }}
"#,
                s0 = url(0, orm),
                s1 = url(1, orm),
                m = url(2, &format!("{orm}_meta")),
                tables = orm_tables(orm),
            ));
        }
        let config = vschema::parse_config(&text, Path::new("orms.toml")).expect("test config");
        Cluster { servers, config }
    })
}

async fn proxy() -> shardgate::Running {
    shardgate::start(&cluster().config, "127.0.0.1:0")
        .await
        .expect("start proxy")
}

async fn client(proxy: &shardgate::Running, db: &str) -> Conn {
    let url = format!("mysql://app:secret@{}/{db}", proxy.addr);
    Conn::new(Opts::from_url(&url).unwrap())
        .await
        .expect("connect to proxy")
}

/// A direct connection to server `i`'s database `db`.
async fn direct(i: usize, db: &str) -> Conn {
    Conn::new(Opts::from_url(&cluster().servers[i].url(db)).unwrap())
        .await
        .unwrap()
}

async fn tables_of(conn: &mut Conn) -> Vec<String> {
    let mut t: Vec<String> = conn.query("SHOW TABLES").await.unwrap();
    t.sort();
    t
}

fn server_error(e: mysql_async::Error) -> (u16, String) {
    match e {
        mysql_async::Error::Server(s) => (s.code, s.message),
        other => panic!("not a server error: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlisted_tables_live_in_their_keyspace() {
    let proxy = proxy().await;
    let mut c = client(&proxy, "ut").await;
    c.query_drop("CREATE TABLE sharded_t (id INT PRIMARY KEY, v VARCHAR(20))")
        .await
        .unwrap();
    // Not listed by ut's VSchema: created in ut_meta, and every statement on it goes there.
    c.query_drop(
        "CREATE TABLE notes (id INT PRIMARY KEY, sharded_id INT, body TEXT, KEY by_sharded (sharded_id))",
    )
    .await
    .unwrap();
    c.query_drop("INSERT INTO sharded_t VALUES (1, 'one'), (2, 'two'), (3, 'three'), (4, 'four')")
        .await
        .unwrap();
    c.query_drop("INSERT INTO notes VALUES (10, 1, 'a'), (11, 3, 'b'), (12, 3, 'c')")
        .await
        .unwrap();
    c.query_drop("UPDATE ut.notes SET body = 'B' WHERE id = 11")
        .await
        .unwrap();
    assert_eq!(tables_of(&mut direct(0, "ut").await).await, ["sharded_t"]);
    assert_eq!(tables_of(&mut direct(1, "ut").await).await, ["sharded_t"]);
    assert_eq!(
        tables_of(&mut direct(2, "ut_meta_db").await).await,
        ["notes"]
    );
    let notes: Vec<(i32, i32, String)> = c
        .query("SELECT id, sharded_id, body FROM notes ORDER BY id")
        .await
        .unwrap();
    assert_eq!(
        notes,
        [
            (10, 1, "a".into()),
            (11, 3, "B".into()),
            (12, 3, "c".into())
        ]
    );
    // A join with a sharded table: planned across keyspaces.
    let joined: Vec<(i32, String, String)> = c
        .query(
            "SELECT n.id, s.v, n.body FROM notes n JOIN sharded_t s ON s.id = n.sharded_id ORDER BY n.id",
        )
        .await
        .unwrap();
    assert_eq!(
        joined,
        [
            (10, "one".into(), "a".into()),
            (11, "three".into(), "B".into()),
            (12, "three".into(), "c".into())
        ]
    );

    // The keyspace as the client sees it: both tables, under ut's name.
    assert_eq!(tables_of(&mut c).await, ["notes", "sharded_t"]);
    let listed: Vec<(String, String)> = c.query("SHOW FULL TABLES FROM ut").await.unwrap();
    assert_eq!(
        listed,
        [
            ("notes".into(), "BASE TABLE".into()),
            ("sharded_t".into(), "BASE TABLE".into())
        ]
    );
    let mut info: Vec<(String, String)> = c
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()",
        )
        .await
        .unwrap();
    info.sort();
    assert_eq!(
        info,
        [
            ("ut".into(), "notes".into()),
            ("ut".into(), "sharded_t".into())
        ]
    );
    // Filtered on one table: only its database answers, so ORDER BY is fine.
    let columns: Vec<(String, String, String)> = c
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = 'ut' AND TABLE_NAME = 'notes' ORDER BY ORDINAL_POSITION",
        )
        .await
        .unwrap();
    let names: Vec<&str> = columns.iter().map(|c| c.2.as_str()).collect();
    assert_eq!(names, ["id", "sharded_id", "body"]);
    assert!(columns.iter().all(|c| c.0 == "ut" && c.1 == "notes"));
    let index: Vec<(String, String)> = c
        .query(
            "SELECT INDEX_SCHEMA, INDEX_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ('notes') ORDER BY INDEX_NAME",
        )
        .await
        .unwrap();
    assert_eq!(
        index,
        [
            ("ut".into(), "by_sharded".into()),
            ("ut".into(), "PRIMARY".into())
        ]
    );
    // Prepared (COM_STMT_PREPARE describes it; the bound statement runs on both databases).
    let mut prepared: Vec<(String, String)> = c
        .exec(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
            ("ut",),
        )
        .await
        .unwrap();
    prepared.sort();
    assert_eq!(
        prepared,
        [
            ("ut".into(), "notes".into()),
            ("ut".into(), "sharded_t".into())
        ]
    );
    // Sorted and limited at the proxy, by the columns' collation (PRIMARY after by_sharded).
    let sorted: Vec<String> = c
        .query(
            "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY t DESC",
        )
        .await
        .unwrap();
    assert_eq!(sorted, ["sharded_t", "notes"]);
    let first: Vec<(String, String)> = c
        .query(
            "SELECT TABLE_NAME, INDEX_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = 'ut' ORDER BY 1, INDEX_NAME LIMIT 2",
        )
        .await
        .unwrap();
    assert_eq!(
        first,
        [
            ("notes".into(), "by_sharded".into()),
            ("notes".into(), "PRIMARY".into())
        ]
    );
    // Rows that combine across both databases: refused, not half an answer.
    let e = c
        .query_drop(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()",
        )
        .await
        .unwrap_err();
    let (code, message) = server_error(e);
    assert_eq!(code, 1235, "{message}");
    assert!(message.contains("aggregates"), "{message}");
    // ut_meta on its own: its own name, all its tables.
    let own: Vec<(String, String)> = c
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'ut_meta'",
        )
        .await
        .unwrap();
    assert_eq!(own, [("ut_meta".into(), "notes".into())]);
    // A user allowed keyspace ut may use its unlisted tables, and nothing else.
    let mut limited =
        Conn::new(Opts::from_url(&format!("mysql://ut_only:pw@{}/ut", proxy.addr)).unwrap())
            .await
            .unwrap();
    let n: Option<i64> = limited
        .query_first("SELECT COUNT(*) FROM notes")
        .await
        .unwrap();
    assert_eq!(n, Some(3));
    // Nor through a subquery or an INSERT's SELECT, which run first.
    for sql in [
        "SELECT * FROM plain.p",
        "SELECT * FROM sharded_t WHERE id IN (SELECT id FROM plain.p)",
        "INSERT INTO sharded_t (id, v) SELECT id, 'x' FROM plain.p",
    ] {
        let e = limited.query_drop(sql).await.unwrap_err();
        assert_eq!(server_error(e).0, 1044, "{sql}");
    }
    let create: (String, String) = c
        .query_first("SHOW CREATE TABLE notes")
        .await
        .unwrap()
        .unwrap();
    assert!(create.1.contains("`sharded_id`"), "{}", create.1);
    c.query_drop("DROP TABLE notes").await.unwrap();
    c.query_drop("DROP TABLE sharded_t").await.unwrap();
    assert!(tables_of(&mut direct(2, "ut_meta_db").await)
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_resolve_by_global_routing_or_name_the_keyspace() {
    let proxy = proxy().await;
    let mut c = client(&proxy, "plain").await;
    c.query_drop("CREATE TABLE p (id INT PRIMARY KEY)")
        .await
        .unwrap();
    c.query_drop("INSERT INTO p VALUES (77), (78)")
        .await
        .unwrap();
    // Without unlisted_tables: the error names the table and the keyspace.
    let e = c
        .query_drop("SELECT * FROM nothing_here")
        .await
        .unwrap_err();
    let (code, message) = server_error(e);
    assert_eq!(code, 1146, "{message}");
    assert!(message.contains("plain.nothing_here"), "{message}");
    // A table only plain's VSchema lists resolves there from a session of another keyspace,
    // before that keyspace's unlisted tables are considered.
    let mut u = client(&proxy, "ut").await;
    let v: Option<i32> = u
        .query_first("SELECT id FROM p WHERE id = 77")
        .await
        .unwrap();
    assert_eq!(v, Some(77));
    c.query_drop("DROP TABLE p").await.unwrap();
}

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// The sequences of an ORM keyspace's sharded tables, in its `_meta` keyspace (created directly:
/// they are the operator's, not the application's).
async fn sequences(orm: &str) {
    let mut m = direct(2, &format!("{orm}_meta")).await;
    for table in ["author", "book"] {
        m.query_drop(format!(
            "CREATE TABLE {orm}_{table}_seq (id INT PRIMARY KEY, next_id BIGINT, cache BIGINT) COMMENT 'vitess_sequence'"
        ))
        .await
        .unwrap();
        m.query_drop(format!("INSERT INTO {orm}_{table}_seq VALUES (0, 1, 10)"))
            .await
            .unwrap();
    }
}

/// Rows `(id, name)` of `{orm}_author`, read from both shards directly, each checked to be on
/// the shard its id hashes to.
async fn authors_on_shards(orm: &str) -> Vec<(i64, String)> {
    let ks = cluster().config.vschema.keyspace(orm).unwrap();
    let Some(vschema::Table::Sharded { vindex, .. }) = ks.table(&format!("{orm}_author")) else {
        panic!("{orm}_author is sharded");
    };
    let mut all = Vec::new();
    for (i, shard) in ks.shards.iter().enumerate() {
        let rows: Vec<(i64, String)> = direct(i, orm)
            .await
            .query(format!("SELECT id, name FROM {orm}_author"))
            .await
            .unwrap();
        for (id, _) in &rows {
            let ksid = vindex.map(&vschema::KeyValue::Int(*id)).unwrap();
            assert_eq!(
                ks.shards[ks.shard_for(&ksid)].name,
                shard.name,
                "{orm} id {id}"
            );
        }
        all.extend(rows);
    }
    all.sort();
    all
}

/// The tables of the `_meta` keyspace's database, read directly.
async fn meta_tables(orm: &str) -> Vec<String> {
    tables_of(&mut direct(2, &format!("{orm}_meta")).await).await
}

fn python() -> PathBuf {
    clients_dir().join(".venv/bin/python")
}

/// What an ORM's run must leave on the servers: `authors` rows of `{orm}_author`, each on the
/// shard its id hashes to, one renamed and one committed, none from the rolled-back
/// transaction; the tool's own tables (`meta`) in `{orm}_meta`, the sharded ones not there.
async fn check_rows(orm: &str, authors: usize, meta: &[&str]) {
    let rows = authors_on_shards(orm).await;
    assert_eq!(rows.len(), authors, "{rows:?}");
    assert!(rows.iter().any(|a| a.1 == "renamed"), "{rows:?}");
    assert!(rows.iter().any(|a| a.1 == "committed"), "{rows:?}");
    assert!(!rows.iter().any(|a| a.1 == "rolled back"), "{rows:?}");
    let tables = meta_tables(orm).await;
    for t in meta {
        assert!(tables.contains(&t.to_string()), "{tables:?}");
    }
    assert!(!tables.contains(&format!("{orm}_author")), "{tables:?}");
}

/// An ORM's script (`tests/clients/<dir>/<script>`, run by `program`) against keyspace `orm`:
/// it checks its own results and prints `ok <name>`; then [`check_rows`].
async fn orm_run(
    program: &Path,
    dir: &str,
    script: &str,
    orm: &str,
    authors: usize,
    meta: &[&str],
) {
    sequences(orm).await;
    let proxy = proxy().await;
    let port = proxy.addr.port().to_string();
    let out = run_orm(program, dir, &[script, "127.0.0.1", &port, orm]);
    let name = Path::new(script).file_stem().unwrap().to_string_lossy();
    let marker = match name.as_ref() {
        "run" => dir.trim_start_matches("orm_").to_string(),
        other => other.to_string(),
    };
    assert!(out.contains(&format!("ok {marker}")), "{out}");
    check_rows(orm, authors, meta).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_migrate_and_crud() {
    orm_run(
        &python(),
        "orm_django",
        "run.py",
        "dj",
        12,
        &["django_migrations"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alembic_upgrade_check_and_crud() {
    orm_run(
        &python(),
        "orm_alembic",
        "run.py",
        "al",
        10,
        &["alembic_version"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rails_migrations_schema_dump_and_crud() {
    let meta = ["schema_migrations", "ar_internal_metadata"];
    orm_run(
        Path::new("/usr/bin/ruby"),
        "orm_rails",
        "run.rb",
        "rails",
        10,
        &meta,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequelize_sync_and_crud() {
    orm_run(Path::new("node"), "orm_node", "sequelize.js", "sq", 10, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typeorm_synchronize_and_crud() {
    orm_run(Path::new("node"), "orm_node", "typeorm.js", "ty", 10, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knex_migrations_and_crud() {
    let meta = ["knex_migrations", "knex_migrations_lock"];
    orm_run(Path::new("node"), "orm_node", "knex.js", "kx", 10, &meta).await;
}

/// sea-orm's entities for keyspace `so`.
mod so {
    pub mod author {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "so_author")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub name: String,
            #[sea_orm(unique)]
            pub email: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {
            #[sea_orm(has_many = "super::book::Entity")]
            Book,
        }

        impl Related<super::book::Entity> for Entity {
            fn to() -> RelationDef {
                Relation::Book.def()
            }
        }

        impl ActiveModelBehavior for ActiveModel {}
    }

    pub mod book {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "so_book")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub author_id: i64,
            pub title: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {
            #[sea_orm(
                belongs_to = "super::author::Entity",
                from = "Column::AuthorId",
                to = "super::author::Column::Id"
            )]
            Author,
        }

        impl Related<super::author::Entity> for Entity {
            fn to() -> RelationDef {
                Relation::Author.def()
            }
        }

        impl ActiveModelBehavior for ActiveModel {}
    }

    pub mod migration {
        use sea_orm_migration::prelude::*;

        pub struct Migrator;

        impl MigratorTrait for Migrator {
            fn migrations() -> Vec<Box<dyn MigrationTrait>> {
                vec![Box::new(Library)]
            }
        }

        #[derive(DeriveMigrationName)]
        struct Library;

        #[async_trait::async_trait]
        impl MigrationTrait for Library {
            async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                manager
                    .create_table(
                        Table::create()
                            .table(Alias::new("so_author"))
                            .col(
                                ColumnDef::new(Alias::new("id"))
                                    .big_integer()
                                    .not_null()
                                    .auto_increment()
                                    .primary_key(),
                            )
                            .col(
                                ColumnDef::new(Alias::new("name"))
                                    .string_len(100)
                                    .not_null(),
                            )
                            .col(
                                ColumnDef::new(Alias::new("email"))
                                    .string_len(100)
                                    .not_null()
                                    .unique_key(),
                            )
                            .to_owned(),
                    )
                    .await?;
                manager
                    .create_table(
                        Table::create()
                            .table(Alias::new("so_book"))
                            .col(
                                ColumnDef::new(Alias::new("id"))
                                    .big_integer()
                                    .not_null()
                                    .auto_increment()
                                    .primary_key(),
                            )
                            .col(
                                ColumnDef::new(Alias::new("author_id"))
                                    .big_integer()
                                    .not_null(),
                            )
                            .col(
                                ColumnDef::new(Alias::new("title"))
                                    .string_len(200)
                                    .not_null(),
                            )
                            .foreign_key(
                                ForeignKey::create()
                                    .name("fk_so_book_author")
                                    .from(Alias::new("so_book"), Alias::new("author_id"))
                                    .to(Alias::new("so_author"), Alias::new("id")),
                            )
                            .to_owned(),
                    )
                    .await?;
                manager
                    .create_index(
                        Index::create()
                            .name("idx_so_book_title")
                            .table(Alias::new("so_book"))
                            .col(Alias::new("title"))
                            .to_owned(),
                    )
                    .await
            }

            async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                manager
                    .drop_table(Table::drop().table(Alias::new("so_book")).to_owned())
                    .await?;
                manager
                    .drop_table(Table::drop().table(Alias::new("so_author")).to_owned())
                    .await
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sea_orm_migration_and_crud() {
    use sea_orm::{
        ActiveModelTrait, ColumnTrait, Database, EntityTrait, ModelTrait, PaginatorTrait,
        QueryFilter, QueryOrder, Set, TransactionTrait,
    };
    use sea_orm_migration::MigratorTrait;
    use so::{author, book, migration::Migrator};

    sequences("so").await;
    let proxy = proxy().await;
    let db = Database::connect(format!("mysql://app:secret@{}/so", proxy.addr))
        .await
        .unwrap();
    Migrator::up(&db, None).await.unwrap();
    assert!(Migrator::get_pending_migrations(&db)
        .await
        .unwrap()
        .is_empty());
    // Again: nothing to apply.
    Migrator::up(&db, None).await.unwrap();

    let mut ids = Vec::new();
    for i in 0..10 {
        let a = author::ActiveModel {
            name: Set(format!("author {i}")),
            email: Set(format!("a{i}@example.com")),
            ..Default::default()
        }
        .insert(&db)
        .await
        .unwrap();
        for n in 1..=2 {
            book::ActiveModel {
                author_id: Set(a.id),
                title: Set(format!("author {i} book {n}")),
                ..Default::default()
            }
            .insert(&db)
            .await
            .unwrap();
        }
        ids.push(a.id);
    }
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 10, "{ids:?}");
    assert_eq!(book::Entity::find().count(&db).await.unwrap(), 20);
    let a5 = author::Entity::find_by_id(ids[5])
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    let titles: Vec<String> = a5
        .find_related(book::Entity)
        .order_by_asc(book::Column::Title)
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.title)
        .collect();
    assert_eq!(titles, ["author 5 book 1", "author 5 book 2"]);
    let with_books = author::Entity::find()
        .filter(author::Column::Email.eq("a6@example.com"))
        .find_with_related(book::Entity)
        .all(&db)
        .await
        .unwrap();
    assert_eq!(with_books.len(), 1);
    assert_eq!(with_books[0].1.len(), 2);
    let mut first: author::ActiveModel = author::Entity::find_by_id(ids[0])
        .one(&db)
        .await
        .unwrap()
        .unwrap()
        .into();
    first.name = Set("renamed".into());
    first.update(&db).await.unwrap();
    book::Entity::delete_many()
        .filter(book::Column::AuthorId.eq(ids[1]))
        .exec(&db)
        .await
        .unwrap();
    author::Entity::delete_by_id(ids[1])
        .exec(&db)
        .await
        .unwrap();

    let txn = db.begin().await.unwrap();
    author::ActiveModel {
        name: Set("committed".into()),
        email: Set("committed@example.com".into()),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .unwrap();
    txn.commit().await.unwrap();
    let txn = db.begin().await.unwrap();
    let rolled = author::ActiveModel {
        name: Set("rolled back".into()),
        email: Set("rb@example.com".into()),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .unwrap();
    book::ActiveModel {
        author_id: Set(rolled.id),
        title: Set("rolled back book".into()),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .unwrap();
    txn.rollback().await.unwrap();
    assert_eq!(
        book::Entity::find()
            .filter(book::Column::Title.eq("rolled back book"))
            .count(&db)
            .await
            .unwrap(),
        0
    );
    db.close().await.unwrap();
    check_rows("so", 10, &["seaql_migrations"]).await;
}

/// Runs an ORM's script (in `tests/clients/<dir>`) against the proxy; panics with its output
/// unless it succeeds.
fn run_orm(program: &Path, dir: &str, args: &[&str]) -> String {
    testkit::run_client(
        Command::new(program)
            .args(args)
            .current_dir(clients_dir().join(dir)),
        "scripts/setup.sh installs the ORMs",
    )
}
