"""Checks that migrations/postgres/ builds the same schema as migrations/sqlite/.

Creates a new PostgreSQL database, applies migrations/postgres/*.sql to it in name order, and
applies migrations/sqlite/*.sql in order to an in-memory SQLite database. Then it compares the
two end states:
  - tables;
  - columns of each table, in order: name, NOT NULL, type class (integer, real, text, blob,
    numeric) and default (without PostgreSQL's `::type` cast);
  - primary key columns;
  - explicit indexes: name, table, uniqueness, partial or not, columns (`<expr>` for an
    expression);
  - UNIQUE constraints (their column lists), and foreign keys (column -> table.column, ON DELETE);
  - triggers: name, table, timing and event.
A primary key column counts as NOT NULL on both sides: PostgreSQL forces it, and SQLite lets a
non-INTEGER one hold NULL. CHECK constraints are not compared (SQLite does not list them). Prints
every difference, drops the database, and exits 1 if there was any difference, otherwise 0.

Usage: python3 tests/postgres_schema_parity.py postgresql://postgres@127.0.0.1:5432/postgres
Needs psql on the PATH. Uses only the standard library.
"""

import os
import pathlib
import re
import sqlite3
import subprocess
import sys
import urllib.parse

MIGRATIONS = pathlib.Path(__file__).resolve().parent.parent / "migrations"
SEP = "\x1f"


def psql(url, *args):
    command = ["psql", "-X", "-q", "-At", "-F", SEP, "-v", "ON_ERROR_STOP=1", "-d", url, *args]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return [line.split(SEP) for line in out.splitlines() if line]


def type_class(declared):
    t = declared.upper()
    if "INT" in t:
        return "integer"
    if any(word in t for word in ("CHAR", "CLOB", "TEXT")):
        return "text"
    if "BLOB" in t or "BYTEA" in t or not t:
        return "blob"
    if any(word in t for word in ("REAL", "FLOA", "DOUB")):
        return "real"
    return "numeric"


def default(text):
    return None if text in (None, "") else re.sub(r"::[a-z ]+$", "", text)


def sqlite_schema():
    db = sqlite3.connect(":memory:")
    for path in sorted((MIGRATIONS / "sqlite").glob("*.sql")):
        db.executescript(path.read_text())
    q = lambda sql, *p: db.execute(sql, p).fetchall()
    s = {k: {} for k in ("tables", "columns", "pk", "indexes", "unique", "fks", "triggers")}
    for (table,) in q("SELECT name FROM sqlite_master WHERE type = 'table' "
                      "AND name NOT LIKE 'sqlite_%'"):
        s["tables"][table] = True
        info = q("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?)", table)
        s["columns"][table] = [(n, bool(nn or pk), type_class(t), default(d))
                               for n, t, nn, d, pk in info]
        pk = tuple(n for n, *_, pk in sorted(info, key=lambda c: c[4]) if pk)
        if pk:
            s["pk"][table] = pk
        for name, unique, origin, partial in q("SELECT name, \"unique\", origin, partial "
                                               "FROM pragma_index_list(?)", table):
            cols = tuple(c or "<expr>" for (c,) in q("SELECT name FROM pragma_index_info(?) "
                                                     "ORDER BY seqno", name))
            if origin == "c":
                s["indexes"][name] = (table, bool(unique), bool(partial), cols)
            elif origin == "u":
                s["unique"][(table, cols)] = True
        for col, ref, to, on_delete in q("SELECT \"from\", \"table\", \"to\", on_delete "
                                         "FROM pragma_foreign_key_list(?)", table):
            s["fks"][(table, col)] = (ref, to, on_delete)
    for name, table, sql in q("SELECT name, tbl_name, sql FROM sqlite_master "
                              "WHERE type = 'trigger'"):
        when = re.search(r"\b(BEFORE|AFTER|INSTEAD OF)\s+(INSERT|UPDATE|DELETE)\b", sql, re.I)
        s["triggers"][name] = (table, when[1].upper(), when[2].upper())
    return s


PG_QUERIES = {
    "tables": "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
    "columns": """SELECT table_name, column_name, is_nullable, data_type, column_default
        FROM information_schema.columns WHERE table_schema = 'public'
        ORDER BY table_name, ordinal_position""",
    "pk": """SELECT c.conrelid::regclass, a.attname
        FROM pg_constraint c, unnest(c.conkey) WITH ORDINALITY k(attnum, n), pg_attribute a
        WHERE c.contype = 'p' AND c.connamespace = 'public'::regnamespace
          AND a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY 1, k.n""",
    "indexes": """SELECT x.indexrelid::regclass, x.indrelid::regclass, x.indisunique,
            x.indpred IS NOT NULL, k.n, pg_get_indexdef(x.indexrelid, k.n::int, true),
            x.indkey[k.n - 1] = 0
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid,
             generate_series(1, x.indnkeyatts) k(n)
        WHERE i.relnamespace = 'public'::regnamespace
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
        ORDER BY 1, 5""",
    "unique": """SELECT c.conname, c.conrelid::regclass, a.attname
        FROM pg_constraint c, unnest(c.conkey) WITH ORDINALITY k(attnum, n), pg_attribute a
        WHERE c.contype = 'u' AND c.connamespace = 'public'::regnamespace
          AND a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY 1, k.n""",
    "fks": """SELECT c.conrelid::regclass, a.attname, c.confrelid::regclass, r.attname,
            c.confdeltype
        FROM pg_constraint c, unnest(c.conkey, c.confkey) k(attnum, refnum),
             pg_attribute a, pg_attribute r
        WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
          AND a.attrelid = c.conrelid AND a.attnum = k.attnum
          AND r.attrelid = c.confrelid AND r.attnum = k.refnum""",
    "triggers": """SELECT trigger_name, event_object_table, action_timing, event_manipulation
        FROM information_schema.triggers WHERE trigger_schema = 'public'""",
}
ON_DELETE = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


def postgres_schema(url):
    for path in sorted((MIGRATIONS / "postgres").glob("*.sql")):
        psql(url, "-f", str(path))
    rows = {key: psql(url, "-c", sql) for key, sql in PG_QUERIES.items()}
    s = {k: {} for k in PG_QUERIES}
    s["tables"] = {t: True for (t,) in rows["tables"]}
    for table, name, nullable, dtype, dflt in rows["columns"]:
        s["columns"].setdefault(table, []).append(
            (name, nullable == "NO", type_class(dtype), default(dflt)))
    for table, col in rows["pk"]:
        s["pk"][table] = s["pk"].get(table, ()) + (col,)
    for name, table, unique, partial, _, col, is_expr in rows["indexes"]:
        cols = s["indexes"].get(name, (None,) * 3 + ((),))[3] + ("<expr>" if is_expr == "t" else col,)
        s["indexes"][name] = (table, unique == "t", partial == "t", cols)
    unique = {}
    for name, table, col in rows["unique"]:
        unique[name] = (table, unique.get(name, (table, ()))[1] + (col,))
    s["unique"] = {key: True for key in unique.values()}
    for table, col, ref, to, on_delete in rows["fks"]:
        s["fks"][(table, col)] = (ref, to, ON_DELETE[on_delete])
    s["triggers"] = {name: (table, timing, event) for name, table, timing, event in rows["triggers"]}
    return s


def differences(lite, pg):
    out = []
    for part in ("tables", "pk", "indexes", "unique", "fks", "triggers"):
        a, b = lite[part], pg[part]
        for key in sorted(a.keys() | b.keys(), key=str):
            if key not in b:
                out.append(f"{part}: {key} only in SQLite: {a[key]}")
            elif key not in a:
                out.append(f"{part}: {key} only in PostgreSQL: {b[key]}")
            elif a[key] != b[key]:
                out.append(f"{part}: {key}: SQLite {a[key]} != PostgreSQL {b[key]}")
    for table in sorted(lite["columns"].keys() & pg["columns"].keys()):
        a = {c[0]: c for c in lite["columns"][table]}
        b = {c[0]: c for c in pg["columns"][table]}
        for name in a.keys() - b.keys():
            out.append(f"columns: {table}.{name} only in SQLite")
        for name in b.keys() - a.keys():
            out.append(f"columns: {table}.{name} only in PostgreSQL")
        for name in a.keys() & b.keys():
            if a[name] != b[name]:
                out.append(f"columns: {table}.{name} (name, not null, type, default): "
                           f"SQLite {a[name]} != PostgreSQL {b[name]}")
        order_a = [n for n in a if n in b]
        order_b = [n for n in b if n in a]
        if order_a != order_b:
            out.append(f"columns: {table} order: SQLite {order_a} != PostgreSQL {order_b}")
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    admin = sys.argv[1]
    name = f"schema_parity_{os.getpid()}"
    url = urllib.parse.urlunsplit(urllib.parse.urlsplit(admin)._replace(path="/" + name))
    psql(admin, "-c", f"CREATE DATABASE {name}")
    try:
        pg = postgres_schema(url)
    except subprocess.CalledProcessError as error:
        sys.exit(f"FAIL applying migrations/postgres: {error.stderr.strip()}")
    finally:
        psql(admin, "-c", f"DROP DATABASE IF EXISTS {name}")
    found = differences(sqlite_schema(), pg)
    for line in found:
        print(f"DIFF {line}")
    if found:
        print(f"FAIL {len(found)} difference(s)")
        return 1
    print(f"OK {len(pg['tables'])} tables, {sum(map(len, pg['columns'].values()))} columns, "
          f"{len(pg['indexes'])} indexes, {len(pg['fks'])} foreign keys, "
          f"{len(pg['triggers'])} triggers: same schema")
    return 0


if __name__ == "__main__":
    sys.exit(main())
