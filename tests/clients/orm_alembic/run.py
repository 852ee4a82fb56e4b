"""SQLAlchemy with Alembic through shardgate: `upgrade head`, then autogenerate (`check`) finds
no difference between the models and the keyspace; then ORM CRUD, a transaction and a rollback.
Fails loudly on any mismatch.

Usage: run.py HOST PORT KEYSPACE
"""

import os
import sys

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from models import Author, Book

host, port, keyspace = sys.argv[1], sys.argv[2], sys.argv[3]
url = f"mysql+pymysql://app:secret@{host}:{port}/{keyspace}"


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")


config = Config()
config.set_main_option("script_location", os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations"))
config.set_main_option("sqlalchemy.url", url)
command.upgrade(config, "head")
# Again: already at head.
command.upgrade(config, "head")
# Autogenerate compares the models with what the keyspace reflects: no changes.
command.check(config)

engine = create_engine(url)
with engine.connect() as conn:
    check(conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0001", "alembic_version")

with Session(engine) as session:
    authors = [Author(name=f"author {i}", email=f"a{i}@example.com") for i in range(10)]
    for a in authors:
        session.add(a)
        session.flush()
        session.add_all([Book(author=a, title=f"{a.name} book 1"), Book(author=a, title=f"{a.name} book 2")])
        session.flush()
    session.commit()
    ids = [a.id for a in authors]
    check(len(set(ids)) == 10, f"distinct ids {ids}")
    check(session.scalar(select(func.count()).select_from(Book)) == 20, "book count")
    author = session.get(Author, ids[4])
    check(sorted(b.title for b in author.books) == ["author 4 book 1", "author 4 book 2"], "relationship")
    joined = session.execute(
        select(Book.title).join(Author).where(Author.email == "a7@example.com").order_by(Book.title)
    ).scalars().all()
    check(joined == ["author 7 book 1", "author 7 book 2"], f"join {joined}")
    author.name = "renamed"
    session.commit()
    for b in session.get(Author, ids[0]).books:
        session.delete(b)
    session.delete(session.get(Author, ids[0]))
    session.commit()
    check(session.scalar(select(func.count()).select_from(Author)) == 9, "delete")

# A transaction that commits and one that rolls back.
with Session(engine) as session, session.begin():
    session.add(Author(name="committed", email="committed@example.com"))
with Session(engine) as session:
    session.add(Author(name="rolled back", email="rb@example.com"))
    session.flush()
    session.rollback()
with Session(engine) as session:
    names = set(session.scalars(select(Author.name)))
    check("committed" in names and "renamed" in names, f"commit: {names}")
    check("rolled back" not in names, "rollback")
print("ok alembic")
