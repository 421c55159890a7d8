// pgx (Go, Debian golang-github-jackc-pgx-v4-dev) through pglane (transaction pooling). pgx prepares
// each new query text under a name of its own (lrupsc_<conn>_<n>, the same names for other texts on
// every connection) with Parse, Describe and Sync, binds it with one result format code per column
// (binary for the types it knows) and describes the portal of every Bind; it removes statements from
// its cache with SQL DEALLOCATE (on eviction, and after 0A000, which it returns once and then
// prepares again). A batch is one extended-protocol group with one Sync. CopyFrom is binary COPY.
//
// Run by tests/integration/test_prepared_drivers.c with PGLANE_DSN set and a section name as the
// argument: pool, evict, batch, describe, simple, copy, cancel, schema. The last line is
// "pgx <section> OK" on success; exit 1 otherwise.
//
// Tables (created by the C test): items(id int primary key, name text, qty int) with ids 1..1000,
// name 'item-<id>', qty id * 3; pgx_rows(worker int, i int, v text, primary key (worker, i));
// pgx_shape(id int, v text).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgconn"
	"github.com/jackc/pgx/v4"
	"github.com/jackc/pgx/v4/pgxpool"
)

const workers = 8 // connections, more than the lane's 2 server connections

var ctx = context.Background()

func check(cond bool, format string, args ...interface{}) {
	if !cond {
		panic(fmt.Sprintf(format, args...))
	}
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func sqlstate(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func dsn(extra string) string {
	d := strings.TrimSpace(os.Getenv("PGLANE_DSN"))
	if extra != "" {
		d += " " + extra
	}
	return d
}

func connect(extra string) *pgx.Conn {
	c, err := pgx.Connect(ctx, dsn(extra))
	must(err)
	return c
}

// Runs fn(k) on workers goroutines and re-raises the first panic.
func parallel(n int, fn func(k int)) {
	var wg sync.WaitGroup
	errs := make(chan interface{}, n)
	for k := 0; k < n; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					errs <- r
				}
			}()
			fn(k)
		}(k)
	}
	wg.Wait()
	close(errs)
	for r := range errs {
		panic(r)
	}
}

func item(c interface {
	QueryRow(context.Context, string, ...interface{}) pgx.Row
}, id int32) {
	var name string
	var qty int32
	must(c.QueryRow(ctx, "SELECT name, qty FROM items WHERE id = $1", id).Scan(&name, &qty))
	check(name == fmt.Sprintf("item-%d", id) && qty == id*3, "item %d: %s %d", id, name, qty)
}

// A pool of 8 over the lane's 2 server connections: the same texts under the same pgx names on
// every connection, a text of each worker's own, transactions, an error rolling one back.
func poolSection() {
	pool, err := pgxpool.Connect(ctx, dsn("pool_max_conns=8 pool_min_conns=8"))
	must(err)
	defer pool.Close()
	parallel(workers, func(k int) {
		for i := 0; i < 40; i++ {
			id := int32((i*7+k)%1000 + 1)
			item(pool, id)
			var v int64
			must(pool.QueryRow(ctx, fmt.Sprintf("SELECT $1::int8 * %d", k+2), i).Scan(&v))
			check(v == int64(i*(k+2)), "worker %d: %d", k, v)
			must(pool.BeginFunc(ctx, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "INSERT INTO pgx_rows VALUES ($1, $2, $3)", k, i, fmt.Sprint("v", i)); err != nil {
					return err
				}
				var n int64
				if err := tx.QueryRow(ctx, "SELECT count(*) FROM pgx_rows WHERE worker = $1", k).Scan(&n); err != nil {
					return err
				}
				check(n == int64(i+1), "worker %d: %d rows after %d inserts", k, n, i+1)
				return nil
			}))
			err := pool.BeginFunc(ctx, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "INSERT INTO pgx_rows VALUES ($1, $2, 'rolled back')", k, 1000+i); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, "INSERT INTO pgx_rows VALUES ($1, $2, 'dup')", k, i)
				return err
			})
			check(sqlstate(err) == "23505", "duplicate: %v", err)
		}
	})
	var n, back int64
	must(pool.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE i >= 1000) FROM pgx_rows WHERE worker < 100").Scan(&n, &back))
	check(n == workers*40 && back == 0, "rows %d, rolled back ones %d", n, back)
}

// A statement cache of 2 entries and 5 texts in turn: pgx deallocates (SQL DEALLOCATE of a name it
// prepared through the protocol) and prepares again all the time.
func evictSection() {
	parallel(workers, func(k int) {
		c := connect("statement_cache_capacity=2")
		defer c.Close(ctx)
		for i := 0; i < 50; i++ {
			var v int32
			must(c.QueryRow(ctx, fmt.Sprintf("SELECT $1::int4 + %d", i%5), int32(k)).Scan(&v))
			check(v == int32(k+i%5), "worker %d round %d: %d", k, i, v)
		}
	})
}

// Batches: every query of a batch in one group with one Sync (an implicit transaction), new texts
// described first; an error in the middle fails the batch's writes as one.
func batchSection() {
	parallel(workers, func(k int) {
		c := connect("")
		defer c.Close(ctx)
		for round := 0; round < 10; round++ {
			b := &pgx.Batch{}
			for i := 0; i < 20; i++ {
				b.Queue("INSERT INTO pgx_rows VALUES ($1, $2, $3)", 100+k, round*20+i, "b")
				b.Queue("SELECT name, qty FROM items WHERE id = $1", int32(round*20+i+1))
			}
			br := c.SendBatch(ctx, b)
			for i := 0; i < 20; i++ {
				_, err := br.Exec()
				must(err)
				var name string
				var qty int32
				must(br.QueryRow().Scan(&name, &qty))
				check(name == fmt.Sprintf("item-%d", round*20+i+1), "batch row %s", name)
			}
			must(br.Close())
		}
		b := &pgx.Batch{}
		b.Queue("INSERT INTO pgx_rows VALUES ($1, $2, 'lost')", 100+k, 5000)
		b.Queue("SELECT 1 / $1::int4", int32(0))
		b.Queue("INSERT INTO pgx_rows VALUES ($1, $2, 'lost')", 100+k, 5001)
		br := c.SendBatch(ctx, b)
		_, err := br.Exec()
		must(err)
		_, err = br.Exec()
		check(sqlstate(err) == "22012", "division: %v", err)
		br.Close()
		var n int64
		must(c.QueryRow(ctx, "SELECT count(*) FROM pgx_rows WHERE worker = $1", 100+k).Scan(&n))
		check(n == 200, "worker %d: %d rows (the failed batch's insert must be rolled back)", k, n)
	})
}

// statement_cache_mode=describe: unnamed statements, described once per text and then bound with
// the description pgx keeps.
func describeSection() {
	parallel(workers, func(k int) {
		c := connect("statement_cache_mode=describe")
		defer c.Close(ctx)
		for i := 0; i < 40; i++ {
			item(c, int32((i*11+k)%1000+1))
		}
	})
}

// prefer_simple_protocol: values are put into the text; simple Queries only.
func simpleSection() {
	parallel(workers, func(k int) {
		c := connect("prefer_simple_protocol=true")
		defer c.Close(ctx)
		for i := 0; i < 40; i++ {
			item(c, int32((i*13+k)%1000+1))
		}
		b := &pgx.Batch{}
		b.Queue("SELECT $1::int4", int32(k))
		b.Queue("SELECT $1::text", "x")
		br := c.SendBatch(ctx, b)
		var v int32
		var s string
		must(br.QueryRow().Scan(&v))
		must(br.QueryRow().Scan(&s))
		must(br.Close())
		check(v == int32(k) && s == "x", "simple batch %d %s", v, s)
	})
}

// CopyFrom: binary COPY FROM STDIN of 1000 rows per connection.
func copySection() {
	parallel(4, func(k int) {
		c := connect("")
		defer c.Close(ctx)
		rows := make([][]interface{}, 1000)
		for i := range rows {
			rows[i] = []interface{}{int32(200 + k), int32(i), fmt.Sprint("c", i)}
		}
		n, err := c.CopyFrom(ctx, pgx.Identifier{"pgx_rows"}, []string{"worker", "i", "v"}, pgx.CopyFromRows(rows))
		must(err)
		check(n == 1000, "copied %d", n)
		var got int64
		must(c.QueryRow(ctx, "SELECT count(*) FROM pgx_rows WHERE worker = $1", 200+k).Scan(&got))
		check(got == 1000, "worker %d: %d rows", k, got)
	})
}

// A context deadline sends a CancelRequest: for queries running on a server and for queries waiting
// in the lane's queue behind them.
func cancelSection() {
	t0 := time.Now()
	parallel(4, func(k int) {
		c := connect("")
		defer c.Close(ctx)
		tctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		_, err := c.Exec(tctx, "SELECT pg_sleep($1)", 30+k)
		check(err != nil, "worker %d: the sleep was not cancelled", k)
	})
	check(time.Since(t0) < 15*time.Second, "cancels took %v", time.Since(t0))
	// pgx v4 sends the CancelRequest and its Terminate from a goroutine of its own after the
	// deadline: the sleeps end once those have arrived, within seconds, not in 30.
	c := connect("")
	defer c.Close(ctx)
	var n int64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		must(c.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(%' AND state = 'active'").Scan(&n))
		if n == 0 || time.Now().After(deadline) {
			break
		}
	}
	check(n == 0, "%d sleeps still running", n)
}

// A table change between two runs of a statement every connection has prepared: pgx binds with one
// result format per column it was told of. It gets PostgreSQL's 0A000 once (the connection that
// prepared it before the change), then prepares again and reads the new columns; through pglane a
// server connection that prepared it after the change answered 08P01 "bind message has 2 result
// formats but query has 3 columns" for every later run.
func schemaSection() {
	admin := connect("")
	defer admin.Close(ctx)
	_, err := admin.Exec(ctx, "INSERT INTO pgx_shape SELECT g, 'v' || g FROM generate_series(1, 10) g")
	must(err)
	conns := make([]*pgx.Conn, workers)
	for k := range conns {
		conns[k] = connect("")
		defer conns[k].Close(ctx)
	}
	read := func(c *pgx.Conn, id int32) ([]interface{}, error) {
		rows, err := c.Query(ctx, "SELECT * FROM pgx_shape WHERE id = $1", id)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var vals []interface{}
		for rows.Next() {
			if vals, err = rows.Values(); err != nil {
				return nil, err
			}
		}
		return vals, rows.Err()
	}
	readAll := func(want int) {
		parallel(workers, func(k int) {
			for i := 0; i < 3; i++ {
				id := int32((k*3+i)%10 + 1)
				vals, err := read(conns[k], id)
				if err != nil {
					check(sqlstate(err) == "0A000", "worker %d: %v", k, err)
					vals, err = read(conns[k], id) // pgx prepares again
				}
				must(err)
				check(len(vals) == want, "worker %d: %d columns %v, want %d", k, len(vals), vals, want)
			}
		})
	}
	readAll(2)
	for round := 0; round < 3; round++ {
		_, err := admin.Exec(ctx, fmt.Sprintf("ALTER TABLE pgx_shape ADD COLUMN c%d int DEFAULT %d", round, round))
		must(err)
		readAll(3 + round)
	}
}

func main() {
	sections := map[string]func(){
		"pool": poolSection, "evict": evictSection, "batch": batchSection, "describe": describeSection,
		"simple": simpleSection, "copy": copySection, "cancel": cancelSection, "schema": schemaSection,
	}
	if len(os.Args) != 2 || sections[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: pgx pool|evict|batch|describe|simple|copy|cancel|schema")
		os.Exit(2)
	}
	done := make(chan interface{}, 1)
	go func() {
		defer func() { done <- recover() }()
		sections[os.Args[1]]()
	}()
	select {
	case r := <-done:
		if r != nil {
			fmt.Fprintln(os.Stderr, "pgx", os.Args[1], "failed:", r)
			os.Exit(1)
		}
	case <-time.After(100 * time.Second):
		fmt.Fprintln(os.Stderr, "pgx", os.Args[1], "timed out")
		os.Exit(1)
	}
	fmt.Println("pgx", os.Args[1], "OK")
}
