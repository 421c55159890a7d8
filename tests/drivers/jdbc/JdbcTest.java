// pgJDBC through pglane (transaction pooling): PreparedStatements executed past prepareThreshold
// (server-side named statements S_n), batch inserts (addBatch/executeBatch), Close of statements,
// several connections in threads. Run by tests/integration/test_prepared_drivers.c as
//   java -cp /usr/share/java/postgresql.jar JdbcTest.java SECTION
// with PGLANE_HOST, PGLANE_PORT, PGLANE_USER, PGLANE_PASSWORD, PGLANE_DB set; SECTION is "prepared"
// or "batch". Last line "pgjdbc SECTION OK <version>" on success, exit 1 otherwise.
import java.sql.BatchUpdateException;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

import org.postgresql.PGStatement;

public class JdbcTest {
    static final int THREADS = 6;

    static String url(int threshold, String extra) {
        return "jdbc:postgresql://" + System.getenv("PGLANE_HOST") + ":" + System.getenv("PGLANE_PORT") + "/"
            + System.getenv("PGLANE_DB") + "?prepareThreshold=" + threshold + "&connectTimeout=20" + extra;
    }

    static Connection connect(int threshold, String extra) throws SQLException {
        return DriverManager.getConnection(url(threshold, extra), System.getenv("PGLANE_USER"),
                                           System.getenv("PGLANE_PASSWORD"));
    }

    static void check(boolean ok, String what) {
        if (!ok)
            throw new AssertionError(what);
    }

    interface Work {
        void run(int k) throws Exception;
    }

    static void threads(Work w) throws Exception {
        List<String> errors = Collections.synchronizedList(new ArrayList<>());
        List<Thread> ts = new ArrayList<>();
        for (int k = 0; k < THREADS; k++) {
            final int kk = k;
            Thread t = new Thread(() -> {
                try {
                    w.run(kk);
                } catch (Throwable e) {
                    errors.add("worker " + kk + ": " + e);
                    e.printStackTrace();
                }
            });
            ts.add(t);
            t.start();
        }
        for (Thread t : ts)
            t.join(60000);
        for (Thread t : ts)
            check(!t.isAlive(), "a worker did not finish within 60 s");
        check(errors.isEmpty(), errors.toString());
    }

    /* Default threshold 5 on odd workers, 1 on even ones: either way past it the statement is S_n. */
    static void prepared(int k) throws Exception {
        try (Connection c = connect(k % 2 == 0 ? 1 : 5, "")) {
            PreparedStatement item = c.prepareStatement("SELECT name, qty FROM items WHERE id = ?");
            PreparedStatement mine = c.prepareStatement("SELECT ?::int * " + (k + 2));
            for (int i = 0; i < 120; i++) {
                int id = (i * 7 + k) % 1000 + 1;
                item.setInt(1, id);
                try (ResultSet rs = item.executeQuery()) {
                    check(rs.next(), "no row for " + id);
                    check(rs.getString(1).equals("item-" + id) && rs.getInt(2) == id * 3,
                          "item " + id + ": " + rs.getString(1) + ", " + rs.getInt(2));
                    check(!rs.next(), "two rows");
                }
                mine.setInt(1, i);
                try (ResultSet rs = mine.executeQuery()) {
                    check(rs.next() && rs.getInt(1) == i * (k + 2), "mine " + i);
                }
                if (i % 20 == 19) {
                    // A transaction mixing the prepared statement with plain queries.
                    c.setAutoCommit(false);
                    item.setInt(1, 7);
                    try (ResultSet rs = item.executeQuery()) {
                        check(rs.next() && rs.getInt(2) == 21, "item 7 in a transaction");
                    }
                    try (Statement st = c.createStatement();
                         ResultSet rs = st.executeQuery(
                             "SELECT count(*) FROM pg_prepared_statements WHERE statement = "
                             + "'SELECT name, qty FROM items WHERE id = $1'")) {
                        check(rs.next() && rs.getLong(1) >= 1, "statement not prepared on the server");
                    }
                    c.commit();
                    c.setAutoCommit(true);
                }
            }
            check(item.unwrap(PGStatement.class).isUseServerPrepare(), "item is not server-prepared");
            item.close();
            mine.close();

            // Statements closed right away (no statement cache): pgJDBC sends Close for each S_n.
            try (Connection nc = connect(1, "&preparedStatementCacheQueries=0")) {
                for (int i = 0; i < 30; i++) {
                    try (PreparedStatement ps = nc.prepareStatement("SELECT ?::int + " + (i % 3))) {
                        for (int j = 0; j < 3; j++) {
                            ps.setInt(1, j);
                            try (ResultSet rs = ps.executeQuery()) {
                                check(rs.next() && rs.getInt(1) == j + i % 3, "closed-cache " + i);
                            }
                        }
                    }
                }
            }
        }
    }

    static void batch(int k) throws Exception {
        try (Connection c = connect(1, "")) {
            try (Statement st = c.createStatement()) {
                st.execute("DELETE FROM jdbc_rows WHERE worker = " + k);
            }
            c.setAutoCommit(false);
            try (PreparedStatement ins = c.prepareStatement(
                     "INSERT INTO jdbc_rows (worker, i, v) VALUES (?, ?, ?)")) {
                for (int b = 0; b < 5; b++) {
                    for (int i = 0; i < 100; i++) {
                        ins.setInt(1, k);
                        ins.setInt(2, b * 100 + i);
                        ins.setString(3, "v" + (b * 100 + i));
                        ins.addBatch();
                    }
                    int[] counts = ins.executeBatch();
                    check(counts.length == 100, "batch size " + counts.length);
                    for (int n : counts)
                        check(n == 1, "update count " + n);
                    c.commit();
                }
                // A batch failing in the middle (duplicate key): the transaction rolls back whole.
                for (int i = 0; i < 50; i++) {
                    ins.setInt(1, k);
                    ins.setInt(2, i == 25 ? 3 : 1000 + i);
                    ins.setString(3, "dup");
                    ins.addBatch();
                }
                boolean failed = false;
                try {
                    ins.executeBatch();
                } catch (BatchUpdateException e) {
                    failed = true;
                    check("23505".equals(e.getNextException() != null ? e.getNextException().getSQLState()
                                                                       : e.getSQLState()),
                          "state " + e.getSQLState());
                }
                check(failed, "duplicate key batch did not fail");
                c.rollback();
            }
            c.setAutoCommit(true);
            try (PreparedStatement q = c.prepareStatement(
                     "SELECT count(*), sum(i), count(*) FILTER (WHERE v = 'dup') FROM jdbc_rows WHERE worker = ?")) {
                q.setInt(1, k);
                try (ResultSet rs = q.executeQuery()) {
                    check(rs.next(), "no count");
                    check(rs.getLong(1) == 500 && rs.getLong(2) == 499L * 500 / 2 && rs.getLong(3) == 0,
                          "rows " + rs.getLong(1) + " sum " + rs.getLong(2) + " dup " + rs.getLong(3));
                }
            }
        }
    }

    public static void main(String[] args) throws Exception {
        String section = args[0];
        if (section.equals("prepared"))
            threads(JdbcTest::prepared);
        else if (section.equals("batch"))
            threads(JdbcTest::batch);
        else
            throw new IllegalArgumentException(section);
        System.out.println("pgjdbc " + section + " OK " + org.postgresql.util.DriverInfo.DRIVER_VERSION
                           + " (java " + System.getProperty("java.version") + ")");
    }
}
