from django.db import models


class Author(models.Model):
    """Sharded by id (keyspace dj's VSchema); ids come from the sequence dj_meta.dj_author_seq."""

    name = models.CharField(max_length=100)
    email = models.CharField(max_length=100, unique=True)

    class Meta:
        db_table = "dj_author"


class Book(models.Model):
    """Sharded by author_id: each book lives with its author, so the foreign key holds per shard."""

    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="books")
    title = models.CharField(max_length=200, db_index=True)

    class Meta:
        db_table = "dj_book"
