//! A single-shard result streams through the proxy without a heap allocation per row: the
//! shard's row packets are read into a reused buffer and written to the client as they are, in
//! the text protocol and (a prepared statement run prepared on the shard) the binary one.
//!
//! The proxy runs on a runtime of its own whose threads are marked; a counting allocator counts
//! what those threads allocate while one query runs. The client (mysql_async, which allocates
//! per row itself) runs on the unmarked test thread.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Row};

struct Counting;

static PROXY_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static PROXY_THREAD: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if PROXY_THREAD.with(Cell::get) {
        PROXY_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const ROWS: u64 = 5_000;

/// Allocations on the proxy's threads while `sql` runs and its rows are read.
async fn allocations_of(client: &mut Conn, sql: &str) -> (u64, usize) {
    let before = PROXY_ALLOCATIONS.load(Ordering::Relaxed);
    let rows: Vec<Row> = client.query(sql).await.unwrap();
    (
        PROXY_ALLOCATIONS.load(Ordering::Relaxed) - before,
        rows.len(),
    )
}

/// The same for a prepared statement's execution with `last` as its parameter (binary rows).
async fn allocations_of_execution(client: &mut Conn, sql: &str, last: u64) -> (u64, usize) {
    let before = PROXY_ALLOCATIONS.load(Ordering::Relaxed);
    let rows: Vec<Row> = client.exec(sql, (last,)).await.unwrap();
    (
        PROXY_ALLOCATIONS.load(Ordering::Relaxed) - before,
        rows.len(),
    )
}

#[test]
fn single_shard_rows_stream_without_allocating() {
    let servers = testkit::start(1, &["solo"]).unwrap();
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let proxy_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(|| PROXY_THREAD.with(|p| p.set(true)))
        .build()
        .unwrap();
    client_rt.block_on(async {
        let mut direct = Conn::new(Opts::from_url(&servers[0].url("solo")).unwrap())
            .await
            .unwrap();
        direct
            .query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, pad CHAR(60) NOT NULL, n INT NULL)")
            .await
            .unwrap();
        direct
            .query_drop(format!(
                "INSERT INTO t SELECT seq, REPEAT('p', 60), IF(seq % 3 = 0, NULL, seq) FROM seq_1_to_{ROWS}"
            ))
            .await
            .unwrap();
    });
    let config = common::config_serving(&format!(
        r#"[keyspaces.solo]
sharded = false
shards = [{{ name = "0", primary = "{}" }}]
"#,
        servers[0].url("solo")
    ));
    let proxy = proxy_rt
        .block_on(async {
            // Started on a worker, so that its listener's tasks are the proxy runtime's.
            tokio::spawn(async move { shardgate::start(&config, "127.0.0.1:0").await })
                .await
                .unwrap()
        })
        .unwrap();
    client_rt.block_on(async {
        let url = format!("mysql://app:secret@{}/solo", proxy.addr);
        let mut client = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
        let few = "SELECT id, pad, n FROM t WHERE id <= 10";
        let many = format!("SELECT id, pad, n FROM t WHERE id <= {ROWS}");
        // Once each first: the plan is cached, the buffers have grown.
        allocations_of(&mut client, few).await;
        allocations_of(&mut client, &many).await;
        let (a_few, n_few) = allocations_of(&mut client, few).await;
        let (a_many, n_many) = allocations_of(&mut client, &many).await;
        assert_eq!((n_few, n_many), (10, ROWS as usize));
        assert!(a_few > 0, "the counter counts the proxy's allocations");
        // A statement costs the same few allocations whatever its row count.
        assert!(
            a_many <= a_few + 8,
            "{a_few} allocations for 10 rows, {a_many} for {ROWS}: the proxy allocates per row"
        );
        // Prepared: run prepared on the shard, its binary rows passed on as they are.
        let prepared = "SELECT id, pad, n FROM t WHERE id <= ?";
        allocations_of_execution(&mut client, prepared, 10).await;
        allocations_of_execution(&mut client, prepared, ROWS).await;
        let (a_few, n_few) = allocations_of_execution(&mut client, prepared, 10).await;
        let (a_many, n_many) = allocations_of_execution(&mut client, prepared, ROWS).await;
        assert_eq!((n_few, n_many), (10, ROWS as usize));
        assert!(
            a_many <= a_few + 8,
            "{a_few} allocations for 10 binary rows, {a_many} for {ROWS}: the proxy allocates per row"
        );
        client.disconnect().await.unwrap();
    });
    proxy_rt.block_on(proxy.stop());
}
