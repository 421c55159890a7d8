// tokio-postgres (Rust, Debian librust-tokio-postgres-dev 0.7) through pglane (transaction pooling).
// tokio-postgres prepares every query given as text under a name unique in the process (s<n>) with
// Parse, Describe and Sync, runs it with Bind (binary parameters and results), Execute and Sync, and
// closes it with Close and Sync as soon as the statement is dropped, a reply nobody waits for.
// Requests of one connection polled together are pipelined, each with its own Sync. Transactions
// are simple Queries (BEGIN, COMMIT, ROLLBACK, SAVEPOINT); inside one, `bind` creates a named portal
// (p<n>) that `query_portal` executes a few rows at a time (PortalSuspended).
//
// Run by tests/integration/test_prepared_drivers.c with PGLANE_DSN set and a section name as the
// argument: pool, pipeline, portal, errors, cancel, copy, schema. The last line is
// "tokio-postgres <section> OK" on success; exit 1 otherwise.
//
// Tables (created by the C test): items(id int primary key, name text, qty int) with ids 1..1000,
// name 'item-<id>', qty id * 3; tk_rows(worker int, i int, v text, primary key (worker, i));
// tk_copy(worker int, i int, v text); tk_shape(id int, v text).
use std::time::{Duration, Instant};

use futures_util::{pin_mut, SinkExt, StreamExt};
use tokio_postgres::{Client, NoTls};

const WORKERS: i32 = 8; // connections, more than the lane's 2 server connections

fn dsn() -> String {
    std::env::var("PGLANE_DSN").expect("PGLANE_DSN").trim().to_string()
}

async fn connect() -> Client {
    let (client, conn) = tokio_postgres::connect(&dsn(), NoTls).await.expect("connect");
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("connection: {}", e);
        }
    });
    client
}

fn code(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_string()).unwrap_or_else(|| format!("no SQLSTATE: {}", e))
}

async fn item(c: &Client, id: i32) {
    let row = c.query_one("SELECT name, qty FROM items WHERE id = $1", &[&id]).await.expect("item");
    let (name, qty): (String, i32) = (row.get(0), row.get(1));
    assert_eq!((name.as_str(), qty), (format!("item-{}", id).as_str(), id * 3));
}

// Runs body(k, client) on WORKERS connections at once.
async fn each_worker<F, Fut>(body: F)
where
    F: Fn(i32, Client) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut tasks = Vec::new();
    for k in 0..WORKERS {
        tasks.push(tokio::spawn(body(k, connect().await)));
    }
    for t in tasks {
        t.await.expect("worker panicked");
    }
}

// Texts prepared once and run many times, texts given as strings (prepared, run and closed each time),
// transactions with savepoints, and a failed insert rolling its transaction back.
async fn pool() {
    each_worker(|k, mut c| async move {
        let stmt = c.prepare("SELECT name, qty FROM items WHERE id = $1").await.expect("prepare");
        let own = c.prepare(&format!("SELECT $1::int8 * {}", k + 2)).await.expect("prepare own");
        for i in 0..40 {
            let id = (i * 7 + k) % 1000 + 1;
            let row = c.query_one(&stmt, &[&id]).await.expect("stmt");
            assert_eq!(row.get::<_, String>(0), format!("item-{}", id));
            item(&c, id).await;
            let v: i64 = c.query_one(&own, &[&(i as i64)]).await.expect("own").get(0);
            assert_eq!(v, (i * (k + 2)) as i64);
            let tx = c.transaction().await.expect("begin");
            tx.execute("INSERT INTO tk_rows VALUES ($1, $2, $3)", &[&k, &i, &format!("v{}", i)]).await.expect("insert");
            let n: i64 = tx.query_one("SELECT count(*) FROM tk_rows WHERE worker = $1", &[&k]).await.expect("count").get(0);
            assert_eq!(n, (i + 1) as i64);
            {
                let mut tx = tx;
                let sp = tx.savepoint("sp").await.expect("savepoint");
                sp.execute("UPDATE tk_rows SET v = 'gone' WHERE worker = $1", &[&k]).await.expect("update");
                sp.rollback().await.expect("rollback to savepoint");
                tx.commit().await.expect("commit");
            }
            let tx = c.transaction().await.expect("begin 2");
            tx.execute("INSERT INTO tk_rows VALUES ($1, $2, 'rolled back')", &[&k, &(1000 + i)]).await.expect("insert 2");
            let e = tx.execute("INSERT INTO tk_rows VALUES ($1, $2, 'dup')", &[&k, &i]).await.expect_err("duplicate");
            assert_eq!(code(&e), "23505");
            tx.rollback().await.expect("rollback");
        }
        let n: i64 = c.query_one("SELECT count(*) FROM tk_rows WHERE worker = $1 AND v <> 'gone'", &[&k]).await.expect("final").get(0);
        assert_eq!(n, 40);
    })
    .await;
}

// Requests polled together on one connection: pipelined, each with its own Sync; an error in the
// middle fails only its own request.
async fn pipeline() {
    each_worker(|k, c| async move {
        let stmt = c.prepare("SELECT $1::int4 + 1").await.expect("prepare");
        for round in 0..10 {
            let mut futs = Vec::new();
            for i in 0..12 {
                let (c, stmt) = (&c, &stmt);
                futs.push(async move {
                    if i == 5 {
                        c.query_one("SELECT 1 / ($1::int4 - $1::int4)", &[&i]).await.map(|_| -1)
                    } else if i % 2 == 0 {
                        c.query_one(stmt, &[&(i + round)]).await.map(|r| r.get::<_, i32>(0))
                    } else {
                        c.query_one("SELECT $1::int4 * 10 + $2::int4", &[&i, &k]).await.map(|r| r.get::<_, i32>(0))
                    }
                });
            }
            let got = futures_util::future::join_all(futs).await;
            for (i, r) in got.into_iter().enumerate() {
                let i = i as i32;
                match r {
                    Ok(v) if i % 2 == 0 => assert_eq!(v, i + round + 1),
                    Ok(v) => assert_eq!(v, i * 10 + k),
                    Err(e) => {
                        assert_eq!(i, 5, "request {} failed: {}", i, e);
                        assert_eq!(code(&e), "22012");
                    }
                }
            }
        }
    })
    .await;
}

// Named portals inside a transaction, executed 7 rows at a time; two portals interleaved.
async fn portal() {
    each_worker(|k, mut c| async move {
        for round in 0..5 {
            let tx = c.transaction().await.expect("begin");
            let stmt = tx.prepare("SELECT id FROM items WHERE id <= $1 ORDER BY id").await.expect("prepare");
            let a = tx.bind(&stmt, &[&(30 + k)]).await.expect("bind a");
            let b = tx.bind("SELECT id * 2 FROM items WHERE id <= 20 ORDER BY id", &[]).await.expect("bind b");
            let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
            loop {
                let ra = tx.query_portal(&a, 7).await.expect("portal a");
                let rb = tx.query_portal(&b, 7).await.expect("portal b");
                got_a.extend(ra.iter().map(|r| r.get::<_, i32>(0)));
                got_b.extend(rb.iter().map(|r| r.get::<_, i32>(0)));
                if ra.is_empty() && rb.is_empty() {
                    break;
                }
            }
            assert_eq!(got_a, (1..=30 + k).collect::<Vec<_>>());
            assert_eq!(got_b, (1..=20).map(|i| i * 2).collect::<Vec<_>>());
            if round % 2 == 0 {
                tx.commit().await.expect("commit");
            } else {
                tx.rollback().await.expect("rollback");
            }
        }
    })
    .await;
}

// Errors of every kind leave the connection usable: in Parse (syntax), in Bind (a value the type
// refuses), in execution, in a simple Query of several statements, and in a transaction.
async fn errors() {
    each_worker(|k, mut c| async move {
        for i in 0..10 {
            let e = c.query("SELEC $1::int4", &[&i]).await.expect_err("syntax");
            assert_eq!(code(&e), "42601");
            let e = c.query("SELECT $1::text::int4", &[&format!("x{}", i)]).await.expect_err("bad value");
            assert_eq!(code(&e), "22P02");
            let e = c.query("SELECT 1 / ($1::int4 - $1::int4)", &[&i]).await.expect_err("division");
            assert_eq!(code(&e), "22012");
            let e = match c.simple_query(&format!("SELECT {}; SELECT 1/0; SELECT 3", k)).await {
                Err(e) => e,
                Ok(_) => panic!("simple: no error"),
            };
            assert_eq!(code(&e), "22012");
            let v: i32 = c.query_one("SELECT $1::int4 * 2", &[&i]).await.expect("after errors").get(0);
            assert_eq!(v, i * 2);
            let tx = c.transaction().await.expect("begin");
            tx.execute("INSERT INTO tk_rows VALUES ($1, $2, 'rolled back')", &[&(300 + k), &i]).await.expect("insert");
            let e = tx.execute("SELECT 1 / $1::int4", &[&0i32]).await.expect_err("in tx");
            assert_eq!(code(&e), "22012");
            let e = tx.execute("SELECT 1", &[]).await.expect_err("failed tx");
            assert_eq!(code(&e), "25P02");
            tx.rollback().await.expect("rollback");
        }
        let n: i64 = c.query_one("SELECT count(*) FROM tk_rows WHERE worker >= 300", &[]).await.expect("count").get(0);
        assert_eq!(n, 0);
    })
    .await;
}

// A CancelRequest for a query running on a server and for queries waiting in the lane's queue
// behind the two that hold the servers.
async fn cancel() {
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..4 {
        let c = connect().await;
        let secs = 30.0 + i as f64;
        tasks.push(tokio::spawn(async move {
            let token = c.cancel_token();
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&secs];
            let q = c.query("SELECT pg_sleep($1)", &params);
            let cancel = async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                token.cancel_query(NoTls).await.expect("cancel_query");
            };
            let (r, _) = futures_util::join!(q, cancel);
            let e = r.expect_err("cancelled");
            assert_eq!(code(&e), "57014");
            let v: i32 = c.query_one("SELECT $1::int4", &[&7i32]).await.expect("after cancel").get(0);
            assert_eq!(v, 7);
        }));
    }
    for t in tasks {
        t.await.expect("cancel task");
    }
    assert!(t0.elapsed() < Duration::from_secs(15), "cancels took {:?}", t0.elapsed());
}

// COPY FROM STDIN through a sink and COPY TO STDOUT through a stream, four connections at once.
async fn copy() {
    each_worker(|k, c| async move {
        if k >= 4 {
            return;
        }
        let sink = c.copy_in("COPY tk_copy (worker, i, v) FROM STDIN").await.expect("copy in");
        pin_mut!(sink);
        for chunk in 0..5 {
            let mut data = String::new();
            for i in chunk * 100..(chunk + 1) * 100 {
                data.push_str(&format!("{}\t{}\tc{}\n", k, i, i));
            }
            sink.send(bytes::Bytes::from(data)).await.expect("send");
        }
        let n = sink.finish().await.expect("finish");
        assert_eq!(n, 500);
        let stream = c.copy_out(&*format!("COPY (SELECT i FROM tk_copy WHERE worker = {} ORDER BY i) TO STDOUT", k)).await.expect("copy out");
        pin_mut!(stream);
        let mut text = Vec::new();
        while let Some(chunk) = stream.next().await {
            text.extend_from_slice(&chunk.expect("chunk"));
        }
        let want: String = (0..500).map(|i| format!("{}\n", i)).collect();
        assert_eq!(String::from_utf8(text).expect("utf8"), want);
    })
    .await;
}

// A table change under prepared statements: tokio-postgres gets 0A000 for a statement whose result
// columns changed and does not prepare it again; a statement prepared after the change works.
async fn schema() {
    let admin = connect().await;
    admin.batch_execute("DELETE FROM tk_shape; INSERT INTO tk_shape VALUES (1, 'a')").await.expect("reset");
    let mut clients = Vec::new();
    let mut stmts = Vec::new();
    for _ in 0..4 {
        let c = connect().await;
        let s = c.prepare("SELECT * FROM tk_shape WHERE id = $1").await.expect("prepare");
        let r = c.query_one(&s, &[&1i32]).await.expect("before");
        assert_eq!(r.len(), 2);
        clients.push(c);
        stmts.push(s);
    }
    admin.batch_execute("ALTER TABLE tk_shape ADD COLUMN w int DEFAULT 5").await.expect("alter");
    for (c, s) in clients.iter().zip(stmts.iter()) {
        match c.query_one(s, &[&1i32]).await {
            Err(e) => assert_eq!(code(&e), "0A000"),
            Ok(r) => panic!("old statement ran with {} columns", r.len()),
        }
        let s2 = c.prepare("SELECT * FROM tk_shape WHERE id = $1").await.expect("prepare again");
        for _ in 0..3 {
            let r = c.query_one(&s2, &[&1i32]).await.expect("after");
            assert_eq!(r.len(), 3);
            assert_eq!(r.get::<_, i32>(2), 5);
        }
    }
    admin.batch_execute("ALTER TABLE tk_shape DROP COLUMN w").await.expect("drop column");
}

fn main() {
    let section = std::env::args().nth(1).unwrap_or_default();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        match section.as_str() {
            "pool" => pool().await,
            "pipeline" => pipeline().await,
            "portal" => portal().await,
            "errors" => errors().await,
            "cancel" => cancel().await,
            "copy" => copy().await,
            "schema" => schema().await,
            _ => {
                eprintln!("unknown section {:?}", section);
                std::process::exit(2);
            }
        }
    });
    println!("tokio-postgres {} OK", section);
}
