"""A Python BI client's session against `stationflow serve` (psycopg 3, the extended
protocol with parameters, prepared statements, a server-side cursor, transactions as
psycopg opens them). Prints what it saw as one JSON object; `serve_postgres.rs` judges it.

usage: psycopg_client.py PORT MEMBER KEY ADMIN KEY DOOMED KEY
with STATIONFLOW (the binary) and STATIONFLOW_KEYS (the key file) in the environment.
"""

import json
import os
import subprocess
import sys
import time

import psycopg

port, member, member_key, admin, admin_key, doomed, doomed_key = sys.argv[1:8]
seen = {}


def connect(user, key):
    return psycopg.connect(
        host="127.0.0.1",
        port=port,
        user=user,
        password=key,
        dbname="stationflow",
        sslmode="disable",
        application_name="psycopg-test",
        connect_timeout=10,
    )


def outcome(conn, sql, params=None):
    """The rows of `sql`, or the SQLSTATE it was refused with."""
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return [list(row) for row in cur.fetchall()] if cur.description else []
    except psycopg.Error as e:
        conn.rollback()
        return {"sqlstate": e.sqlstate, "message": str(e).strip()}


def plain(rows):
    return [[str(v) for v in row] for row in rows] if isinstance(rows, list) else rows


with connect(member, member_key) as conn:
    by_plant = "SELECT count(*) FROM station_windows WHERE plant = %s"
    seen["member_austin_param"] = outcome(conn, by_plant, ("AUSTIN",))
    seen["member_leeds_param"] = outcome(conn, by_plant, ("LEEDS",))
    seen["member_plants_param"] = outcome(
        conn,
        "SELECT plant, count(*) FROM station_windows_latest WHERE good_qty >= %s "
        "GROUP BY plant ORDER BY plant",
        (0,),
    )
    with conn.cursor() as cur:
        for _ in range(3):
            cur.execute(
                "SELECT DISTINCT plant FROM oee_by_plant_day WHERE plant <> %s",
                ("nowhere",),
                prepare=True,
            )
        seen["member_prepared"] = [row[0] for row in cur.fetchall()]
    with conn.cursor(name="windows") as named:
        named.execute("SELECT DISTINCT plant FROM station_windows")
        seen["member_cursor"] = sorted(row[0] for row in named.fetchall())
    conn.commit()
    seen["member_side_channel"] = outcome(
        conn,
        "SELECT count(*) FROM station_windows "
        "WHERE 1 / (CASE WHEN plant = %s THEN 0 ELSE 1 END) = 1",
        ("AUSTIN",),
    )
    for name, sql in [
        ("set_engine", "SET datafusion.optimizer.max_passes = 0"),
        ("copy", "COPY (SELECT 1) TO '/tmp/stationflow-copy.csv'"),
        ("create_view", "CREATE VIEW mine AS SELECT 1"),
        ("insert", "INSERT INTO station_windows_files SELECT * FROM station_windows_files"),
    ]:
        seen[name] = outcome(conn, sql)
    conn.autocommit = True
    seen["set_client"] = outcome(conn, "SET application_name = 'renamed'")
    seen["show"] = outcome(conn, "SHOW application_name")

with connect(admin, admin_key) as conn:
    seen["admin_plants_param"] = plain(
        outcome(
            conn,
            "SELECT plant, count(*) FROM station_windows_latest WHERE good_qty >= %s "
            "GROUP BY plant ORDER BY plant",
            (0,),
        )
    )

# A key revoked while its connection is open stops at the next statement.
with connect(doomed, doomed_key) as conn:
    conn.autocommit = True
    seen["doomed_before"] = outcome(conn, "SELECT count(*) FROM station_windows")
    subprocess.run(
        [os.environ["STATIONFLOW"], "keys", "revoke", doomed, "--keys", os.environ["STATIONFLOW_KEYS"]],
        check=True,
        capture_output=True,
    )
    seen["doomed_after"] = outcome(conn, "SELECT count(*) FROM station_windows")

# So does a key that expires while its connection is open.
short_key = subprocess.run(
    [os.environ["STATIONFLOW"], "keys", "create", "--name", "short", "--role", "member",
     "--plants", "LEEDS", "--expires-in", "5s", "--keys", os.environ["STATIONFLOW_KEYS"]],
    check=True,
    capture_output=True,
    text=True,
).stdout.strip()
with connect("short", short_key) as conn:
    conn.autocommit = True
    seen["short_before"] = outcome(conn, "SELECT count(*) FROM station_windows")
    time.sleep(6)
    seen["short_after"] = outcome(conn, "SELECT count(*) FROM station_windows")

try:
    connect(member, member_key + "0").close()
    seen["wrong_key"] = "connected"
except psycopg.OperationalError as e:
    seen["wrong_key"] = str(e).strip()

print(json.dumps(seen, default=str))
