"""Django through shardgate: `migrate` of an app with a foreign key, an index and a unique field
(its tables sharded, django_migrations in the keyspace's unlisted-tables keyspace), then CRUD
through the ORM and the test client, a transaction and a rollback. Fails loudly on any mismatch.

Usage: run.py HOST PORT KEYSPACE
"""

import json
import sys

import pymysql

pymysql.install_as_MySQLdb()

import django  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path  # noqa: E402

host, port, keyspace = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def author_view(request, author_id=None):
    from django.http import JsonResponse
    from library.models import Author

    if request.method == "POST":
        body = json.loads(request.body)
        author = Author.objects.create(name=body["name"], email=body["email"])
        return JsonResponse({"id": author.id}, status=201)
    author = Author.objects.get(pk=author_id)
    books = sorted(b.title for b in author.books.all())
    return JsonResponse({"id": author.id, "name": author.name, "books": books})


urlpatterns = [
    path("authors", author_view),
    path("authors/<int:author_id>", author_view),
]

settings.configure(
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": keyspace,
            "USER": "app",
            "PASSWORD": "secret",
            "HOST": host,
            "PORT": port,
        }
    },
    INSTALLED_APPS=["library"],
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["testserver"],
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    MIDDLEWARE=[],
    USE_TZ=True,
)
django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import IntegrityError, connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from library.models import Author, Book  # noqa: E402


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")


call_command("migrate", verbosity=1)
# Again: nothing to apply, read from django_migrations through shardgate.
call_command("migrate", verbosity=1)
# The models match the migrations.
call_command("makemigrations", "library", check=True, dry_run=True, verbosity=1)

with connection.cursor() as cur:
    # Django's MySQL backend asks for READ COMMITTED on every connection.
    cur.execute("SELECT @@transaction_isolation")
    check(cur.fetchone()[0] == "READ-COMMITTED", "isolation level")
    cur.execute("SELECT app, name FROM django_migrations ORDER BY id")
    check(cur.fetchall() == (("library", "0001_initial"),), "django_migrations rows")
check(
    {"dj_author", "dj_book", "django_migrations"} <= set(connection.introspection.table_names()),
    "introspection lists the sharded and the unlisted tables",
)
constraints = connection.introspection.get_constraints(connection.cursor(), "dj_book")
check(
    any(c["foreign_key"] == ("dj_author", "id") for c in constraints.values()),
    f"foreign key of dj_book: {constraints}",
)

# The test client: a view creating and one reading.
client = Client()
ids = []
for i in range(12):
    r = client.post(
        "/authors",
        data=json.dumps({"name": f"author {i}", "email": f"a{i}@example.com"}),
        content_type="application/json",
    )
    check(r.status_code == 201, f"POST /authors: {r.status_code} {r.content!r}")
    ids.append(r.json()["id"])
check(len(set(ids)) == 12, f"distinct ids {ids}")

# ORM CRUD.
for n, author_id in enumerate(ids):
    author = Author.objects.get(pk=author_id)
    Book.objects.create(author=author, title=f"book {n}a")
    Book.objects.create(author=author, title=f"book {n}b")
check(Book.objects.count() == 24, "book count")
r = client.get(f"/authors/{ids[3]}")
check(r.json()["books"] == ["book 3a", "book 3b"], f"GET author: {r.json()}")
titles = sorted(
    Book.objects.select_related("author").filter(author__email="a5@example.com").values_list("title", flat=True)
)
check(titles == ["book 5a", "book 5b"], f"join: {titles}")
Author.objects.filter(pk=ids[0]).update(name="renamed")
check(Author.objects.get(pk=ids[0]).name == "renamed", "update")
Book.objects.filter(author_id=ids[1]).delete()
Author.objects.filter(pk=ids[1]).delete()
check(Author.objects.count() == 11 and Book.objects.count() == 22, "delete")
# A transaction that commits and one that rolls back.
with transaction.atomic():
    a = Author.objects.create(name="committed", email="committed@example.com")
    Book.objects.create(author=a, title="committed book")
try:
    with transaction.atomic():
        b = Author.objects.create(name="rolled back", email="rb@example.com")
        Book.objects.create(author=b, title="rolled back book")
        raise RuntimeError("roll back")
except RuntimeError:
    pass
check(Author.objects.filter(name="committed").count() == 1, "commit")
check(not Author.objects.filter(name="rolled back").exists(), "rollback")
check(not Book.objects.filter(title="rolled back book").exists(), "rollback of the book")
print("ok django")
