#!/usr/bin/env python3
"""Writes the seed corpora under tests/fuzz/corpus/<target>/ (run from anywhere; idempotent).

Seeds are small realistic inputs: real startup packets and message streams as libpq and
PostgreSQL 15 send them, RFC 7677's SCRAM-SHA-256 exchange, SQL statements and pglane ini files.
"""
import base64
import hashlib
import hmac
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def cstr(s):
    return s.encode() + b"\0"


def msg(t, body=b""):
    return t.encode() + struct.pack("!I", len(body) + 4) + body


# ---------------------------------------------------------------------------------------------
# Startup packets (untyped, length first).

def startup(params, version=196608):
    body = struct.pack("!I", version) + b"".join(cstr(k) + cstr(v) for k, v in params) + b"\0"
    return struct.pack("!I", len(body) + 4) + body


write("startup", "v3_psql", startup([("user", "app"), ("database", "app"),
                                     ("application_name", "psql"), ("client_encoding", "UTF8")]))
write("startup", "v3_minimal", startup([("user", "pglane")]))
write("startup", "v3_options", startup([("user", "etl"), ("database", "dw"),
                                        ("options", "-c statement_timeout=0 -c search_path=etl"),
                                        ("replication", "false")]))
write("startup", "v3_2", startup([("user", "app")], version=(3 << 16) | 2))
write("startup", "v2_unsupported", startup([("user", "app")], version=2 << 16))
write("startup", "ssl_request", struct.pack("!II", 8, 80877103))
write("startup", "gssenc_request", struct.pack("!II", 8, 80877104))
write("startup", "cancel_request", struct.pack("!IIII", 16, 80877102, 4242, 0x5eed1234))
write("startup", "v3_then_password",
      startup([("user", "app"), ("database", "app")]) + msg("p", cstr("secret")))

# ---------------------------------------------------------------------------------------------
# SCRAM-SHA-256: RFC 7677 section 3, user "user", password "pencil".

CNONCE = "rOprNGfwEbeRWgbNEkqO"
SNONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
SALT_B64 = "W22ZaJ0SNY7soEsUEjb6gQ=="
CLIENT_FIRST = "n,,n=user,r=" + CNONCE
SERVER_FIRST = "r=%s%s,s=%s,i=4096" % (CNONCE, SNONCE, SALT_B64)
CLIENT_FINAL = "c=biws,r=%s%s,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=" % (CNONCE, SNONCE)
SERVER_FINAL = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="



def make_secret(password, salt, iterations):
    """PostgreSQL's stored form, as pg_authid.rolpassword holds it."""
    salted = hashlib.pbkdf2_hmac("sha256", password, salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    b64 = lambda b: base64.b64encode(b).decode()
    return "SCRAM-SHA-256$%d:%s$%s:%s" % (iterations, b64(salt), b64(stored_key), b64(server_key))


SECRET = make_secret(b"pencil", base64.b64decode(SALT_B64), 4096)

# First byte: mode % 3 = 0 server role, 1 client role, 2 stored secret; 0x40 = client derives keys
# from the password; 0x80 = small output buffer. Then message '\n' message.
write("scram", "server_rfc7677", b"\x00" + (CLIENT_FIRST + "\n" + CLIENT_FINAL).encode())
write("scram", "server_y_gs2", b"\x03" + ("y,,n=user,r=" + CNONCE + "\nc=eSws,r=" + CNONCE + SNONCE
                                          + ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=").encode())
write("scram", "server_ext_small_out", b"\x81" + ("n,,n=,r=" + CNONCE + ",x=ext\n" + CLIENT_FINAL).encode())
write("scram", "client_rfc7677", b"\x01" + (SERVER_FIRST + "\n" + SERVER_FINAL).encode())
write("scram", "client_rfc7677_password", b"\x40" + (SERVER_FIRST + "\n" + SERVER_FINAL).encode())
write("scram", "client_server_error", b"\x01" + (SERVER_FIRST + "\ne=invalid-proof").encode())
write("scram", "secret_rfc7677", b"\x02" + SECRET.encode())
write("scram", "secret_pglane", b"\x02" + make_secret(b"pglane", b"pglane-salt-0001", 4096).encode())

# ---------------------------------------------------------------------------------------------
# Typed message streams (frontend and backend).

def sasl_initial(mech, data):
    return msg("p", cstr(mech) + struct.pack("!i", len(data)) + data)


write("frame", "fe_simple_query", msg("Q", cstr("SELECT 1")) + msg("X"))
write("frame", "fe_extended",
      msg("P", cstr("s1") + cstr("SELECT $1::int") + struct.pack("!hI", 1, 23)) +
      msg("B", cstr("") + cstr("s1") + struct.pack("!hh", 1, 0) + struct.pack("!hi", 1, 2) + b"42"
          + struct.pack("!hh", 1, 0)) +
      msg("D", b"P" + cstr("")) + msg("E", cstr("") + struct.pack("!i", 0)) + msg("S"))
write("frame", "fe_prepared",
      msg("P", cstr("s2") + cstr("SELECT $1, $2") + struct.pack("!hII", 2, 23, 0)) +
      msg("B", cstr("p2") + cstr("s2") + struct.pack("!hhh", 2, 0, 1) + struct.pack("!h", 2)
          + struct.pack("!i", 1) + b"7" + struct.pack("!i", -1) + struct.pack("!hh", 1, 1)) +
      msg("D", b"S" + cstr("s2")) + msg("E", cstr("p2") + struct.pack("!i", 10)) +
      msg("C", b"P" + cstr("p2")) + msg("C", b"S" + cstr("s2")) + msg("H") + msg("S"))
write("frame", "fe_password", msg("p", cstr("secret")))
write("frame", "fe_md5", msg("p", cstr("md5" + "0123456789abcdef0123456789abcdef")))
write("frame", "fe_sasl", sasl_initial("SCRAM-SHA-256", CLIENT_FIRST.encode()) +
      msg("p", CLIENT_FINAL.encode()))
write("frame", "fe_sasl_no_data", msg("p", cstr("SCRAM-SHA-256") + struct.pack("!i", -1)))
write("frame", "fe_copy", msg("Q", cstr("COPY t FROM STDIN")) + msg("d", b"1\tone\n2\ttwo\n")
      + msg("c"))

def ps(k, v):
    return msg("S", cstr(k) + cstr(v))

write("frame", "be_login_scram",
      msg("R", struct.pack("!I", 10) + cstr("SCRAM-SHA-256") + b"\0") +
      msg("R", struct.pack("!I", 11) + SERVER_FIRST.encode()) +
      msg("R", struct.pack("!I", 12) + SERVER_FINAL.encode()) +
      msg("R", struct.pack("!I", 0)) +
      ps("server_version", "15.4") + ps("client_encoding", "UTF8") + ps("DateStyle", "ISO, MDY") +
      ps("integer_datetimes", "on") + ps("standard_conforming_strings", "on") +
      msg("K", struct.pack("!II", 31337, 0x2badf00d)) + msg("Z", b"I"))
write("frame", "be_login_md5", msg("R", struct.pack("!I", 5) + b"\x01\x02\x03\x04"))
write("frame", "be_login_cleartext", msg("R", struct.pack("!I", 3)))
write("frame", "be_select",
      msg("T", struct.pack("!h", 1) + cstr("?column?") + struct.pack("!IhIhih", 0, 0, 23, 4, -1, 0)) +
      msg("D", struct.pack("!hi", 1, 1) + b"1") + msg("C", cstr("SELECT 1")) + msg("Z", b"I"))
write("frame", "be_error",
      msg("E", b"SERROR\0VERROR\0C42P01\0Mrelation \"nope\" does not exist\0P15\0"
               b"Fparse_relation.c\0L1392\0RparserOpenTable\0\0") + msg("Z", b"E"))
write("frame", "be_notice",
      msg("N", b"SNOTICE\0VNOTICE\0C00000\0Mtable \"t\" does not exist, skipping\0"
               b"Dsome detail\0Hsome hint\0\0") + msg("C", cstr("DROP TABLE")) + msg("Z", b"T"))
write("frame", "be_extended", msg("1") + msg("2") + msg("n") + msg("C", cstr("INSERT 0 1")) +
      msg("3") + msg("Z", b"I"))

# ---------------------------------------------------------------------------------------------
# SQL.

SQL = {
    "select_join": "SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id "
                   "WHERE o.created_at > now() - interval '1 day' AND o.status IN ('new', 'paid')",
    "aggregate": "select region, count(*), sum(amount) over (partition by region) "
                 "from public.sales group by region having count(*) > 10 order by 2 desc limit 50",
    "insert_returning": "INSERT INTO events(kind, payload) VALUES ($1, $2), ($3, $4) RETURNING id",
    "update": "UPDATE accounts SET balance = balance - 100.50 WHERE id = 42;",
    "delete_cte": "WITH old AS (DELETE FROM sessions WHERE expires < now() RETURNING *) "
                  "INSERT INTO sessions_archive SELECT * FROM old",
    "tx": "BEGIN; SELECT * FROM t FOR UPDATE; COMMIT;",
    "set": "SET search_path = app, public; SET LOCAL statement_timeout = '2s'; RESET ALL",
    "hint_block": "/* pglane lane=analytics */ SELECT count(*) FROM big_table",
    "hint_line": "-- pglane lane=oltp\nSELECT 1",
    "dollar": "DO $body$ BEGIN PERFORM pg_sleep(0.1); RAISE NOTICE 'x;y'; END $body$;",
    "strings": "SELECT E'it\\'s', U&'d\\0061t\\+000061', B'1010', X'1F', N'nat', \"Quoted\"\"Id\", "
               "0x1F, 1e-3, .5, -7 FROM \"Schema\".\"Table\"",
    "comments": "/* outer /* nested */ still */ SELECT 1 -- trailing\n; ; SELECT 2",
    "ddl": "CREATE TEMP TABLE tmp (id int primary key, v text default 'a;b'); "
           "CREATE RULE r AS ON INSERT TO t DO INSTEAD (INSERT INTO u VALUES (1); "
           "INSERT INTO v VALUES (2))",
    "utility": "PREPARE p(int) AS SELECT $1; EXECUTE p(1); DEALLOCATE p; LISTEN ch; "
               "DISCARD ALL; VACUUM ANALYZE t; REFRESH MATERIALIZED VIEW mv; CHECKPOINT",
    "copy_explain": "COPY t (a, b) FROM STDIN WITH (FORMAT csv); EXPLAIN (ANALYZE) SELECT * FROM t",
    "session_funcs": "SELECT set_config('search_path', 'x', false), pg_advisory_lock(1), nextval('s')",
    "merge": "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v "
             "WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v)",
    "incomplete": "SELECT 'unterminated string; SELECT $$ also /* open",
    "cast_ops": "SELECT a::text || b, x->>'k', arr[1:2], y @> '{1}' FROM t WHERE z ~* '^a'",
}
for name, sql in SQL.items():
    write("lexer", name, sql)

# ---------------------------------------------------------------------------------------------
# Configuration files and auth_files.

os.makedirs(os.path.join(CORPUS, "conf"), exist_ok=True)
for name in ("pglane.ini", "insightsnow.ini", "userlist.txt"):
    shutil.copy(os.path.join(ROOT, "conf", name), os.path.join(CORPUS, "conf", name))
write("conf", "minimal.ini", "[pglane]\nauth_type = trust\ndefault_lane = l\n\n[server.s]\n\n"
                             "[lane.l]\nserver = s\n")
write("conf", "tls.ini",
      "[pglane]\nlisten = 0.0.0.0:6432, [::1]:6433\nunix_socket_dir = /tmp\nauth_type = md5\n"
      "auth_file = /etc/pglane/userlist.txt\ndefault_lane = main\ntls_mode = require\n"
      "tls_cert_file = server.crt\ntls_key_file = server.key\ntls_ca_file = ca.crt\n"
      "tls_protocols = TLSv1.3\nclient_login_timeout = 30s\nmetrics_listen = [::1]:9127\n"
      "max_prepared_statements = 0\nstats_fingerprints = 100\n\n"
      "[server.db]\nhost = /var/run/postgresql\nport = 5433\nserver_tls_mode = verify-full\n"
      "server_tls_ca_file = root.crt\n\n"
      "[lane.main]\nserver = db\nsize = 10\nreserve = 2\nreserve_timeout = 250ms\n"
      "server_connect_timeout = 5s\nserver_lifetime = 1h\nguard = cancel\nguard_wait = 100ms\n"
      "set.search_path = app\n\n"
      "[route.net]\nclient_addr = 10.0.0.0/8, fe80::/10, 127.0.0.1\ndatabase = app*, report?\n"
      "user = etl\nkind = insert, copy\ntables = public.events, \"Quoted\"\nlane = main\n")
write("conf", "errors.ini", "[pglane]\nlisten = nowhere\nmax_client_conn = -1\nbogus = 1\n"
                            "[lane.x]\nsize = 0\nserver = missing\n[route.r]\nsql = (unclosed\n"
                            "[weird]\n[lane.x]\n")
write("conf", "userlist_secrets.txt",
      '"app" "md5e8a48653851e28c69d0506508fb27fc5"\n'
      '; comment\n# another\n\n'
      '"scram" "%s"\n"quote""d" "pa""ss"\n' % SECRET)
