"""Python drivers through shardgate: PyMySQL (text protocol), mysql-connector-python with
prepared=True (binary protocol, and caching_sha2_password), SQLAlchemy Core. Each creates rows,
reads them back by shard key and by scatter, updates, deletes, and checks every result. Run by
tests/clients.rs as `python python_clients.py HOST PORT`; any failed check raises.
"""

import datetime
import decimal
import sys

HOST, PORT = sys.argv[1], int(sys.argv[2])
USER, PASSWORD = "app", "secret"


def check(got, want, what):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def pymysql_text():
    import pymysql

    conn = pymysql.connect(host=HOST, port=PORT, user=USER, password=PASSWORD, database="two")
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS py_people")
        cur.execute(
            "CREATE TABLE py_people (id BIGINT PRIMARY KEY, name VARCHAR(50) NOT NULL, "
            "score DECIMAL(6,2) NULL, born DATE NULL)"
        )
        rows = [(i, f"person {i}'s", decimal.Decimal(i) / 4, datetime.date(2000, 1, i % 28 + 1)) for i in range(1, 41)]
        # executemany becomes one multi-row INSERT, split by shard at the proxy.
        check(cur.executemany("INSERT INTO py_people (id, name, score, born) VALUES (%s, %s, %s, %s)", rows), 40, "inserted")
        conn.commit()
        cur.execute("SELECT id, name, score, born FROM py_people WHERE id = %s", (7,))
        check(cur.fetchall(), ((7, "person 7's", decimal.Decimal("1.75"), datetime.date(2000, 1, 8)),), "by key")
        cur.execute("SELECT id FROM py_people WHERE score > %s ORDER BY id DESC LIMIT 3", (2,))
        check([r[0] for r in cur.fetchall()], [40, 39, 38], "scatter, ordered")
        cur.execute("SELECT COUNT(*), SUM(score) FROM py_people")
        check(cur.fetchone(), (40, decimal.Decimal("205.00")), "aggregate")
        check(cur.execute("UPDATE py_people SET name = %s WHERE id IN (%s, %s)", ("renamed", 3, 30)), 2, "updated")
        check(cur.execute("DELETE FROM py_people WHERE id > %s", (35,)), 5, "deleted")
        conn.commit()
        # A rolled-back transaction leaves nothing behind.
        conn.begin()
        cur.execute("DELETE FROM py_people")
        conn.rollback()
        cur.execute("SELECT COUNT(*) FROM py_people WHERE name = 'renamed'")
        check(cur.fetchone(), (2,), "after rollback")
        cur.execute("SELECT COUNT(*) FROM py_people")
        check(cur.fetchone(), (35,), "rows left")
    conn.close()
    print("ok PyMySQL")


def connector_prepared():
    import mysql.connector

    for plugin in ("mysql_native_password", "caching_sha2_password"):
        conn = mysql.connector.connect(
            host=HOST, port=PORT, user=USER, password=PASSWORD, database="two",
            auth_plugin=plugin, use_pure=True,
        )
        cur = conn.cursor(prepared=True)
        cur.execute("SELECT id, name, score, born FROM py_people WHERE id = ?", (3,))
        check(cur.fetchall(), [(3, "renamed", decimal.Decimal("0.75"), datetime.date(2000, 1, 4))], f"prepared by key ({plugin})")
        conn.close()

    conn = mysql.connector.connect(host=HOST, port=PORT, user=USER, password=PASSWORD, database="two", use_pure=True)
    cur = conn.cursor(prepared=True)
    insert = "INSERT INTO py_people (id, name, score, born) VALUES (?, ?, ?, ?)"
    for i in range(100, 110):
        cur.execute(insert, (i, f"prepared {i}", decimal.Decimal("1.50"), datetime.date(1990, 5, 17)))
    conn.commit()
    cur.execute("SELECT COUNT(*), SUM(score) FROM py_people WHERE id >= ?", (100,))
    check(cur.fetchall(), [(10, decimal.Decimal("15.00"))], "prepared scatter aggregate")
    cur.execute("SELECT name FROM py_people WHERE id = ?", (104,))
    check(cur.fetchall(), [("prepared 104",)], "prepared by key")
    cur.execute("UPDATE py_people SET score = score + ? WHERE id = ?", (decimal.Decimal("2.25"), 104))
    check(cur.rowcount, 1, "prepared update")
    cur.execute("DELETE FROM py_people WHERE id BETWEEN ? AND ?", (100, 102))
    check(cur.rowcount, 3, "prepared delete")
    conn.commit()
    cur.execute("SELECT id, score FROM py_people WHERE id >= ? ORDER BY id", (100,))
    got = cur.fetchall()
    check([r[0] for r in got], list(range(103, 110)), "rows left")
    check(got[1], (104, decimal.Decimal("3.75")), "updated row")
    conn.close()
    print("ok mysql-connector-python (prepared, caching_sha2_password)")


def sqlalchemy_core():
    from sqlalchemy import (BigInteger, Column, Date, MetaData, Numeric, String, Table,
                            create_engine, delete, func, insert, select, update)

    engine = create_engine(f"mysql+pymysql://{USER}:{PASSWORD}@{HOST}:{PORT}/two")
    meta = MetaData()
    people = Table(
        "py_people", meta,
        Column("id", BigInteger, primary_key=True, autoincrement=False),
        Column("name", String(50), nullable=False),
        Column("score", Numeric(6, 2)),
        Column("born", Date),
    )
    with engine.begin() as conn:
        conn.execute(insert(people), [
            {"id": 200 + i, "name": f"core {i}", "score": decimal.Decimal(i), "born": None} for i in range(10)
        ])
    with engine.connect() as conn:
        got = conn.execute(select(people.c.name, people.c.born).where(people.c.id == 205)).all()
        check([tuple(r) for r in got], [("core 5", None)], "core by key")
        total = conn.execute(select(func.count(), func.sum(people.c.score)).where(people.c.id >= 200)).one()
        check(tuple(total), (10, decimal.Decimal("45.00")), "core aggregate")
        top = conn.execute(select(people.c.id).where(people.c.id >= 200).order_by(people.c.score.desc()).limit(2)).scalars().all()
        check(top, [209, 208], "core order by + limit")
    with engine.begin() as conn:
        check(conn.execute(update(people).where(people.c.id == 201).values(name="core renamed")).rowcount, 1, "core update")
        check(conn.execute(delete(people).where(people.c.id >= 205)).rowcount, 5, "core delete")
    with engine.connect() as conn:
        names = conn.execute(select(people.c.name).where(people.c.id >= 200).order_by(people.c.id)).scalars().all()
        check(names, ["core 0", "core renamed", "core 2", "core 3", "core 4"], "core rows left")
    engine.dispose()
    print("ok SQLAlchemy Core")


def main():
    pymysql_text()
    connector_prepared()
    sqlalchemy_core()


if __name__ == "__main__":
    main()
