"""The SQLAlchemy models of keyspace al: al_author sharded by id, al_book by author_id (so each
book lives with its author and the foreign key holds per shard); ids come from sequences."""

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "al_author"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(100), unique=True)
    books: Mapped[list["Book"]] = relationship(back_populates="author")


class Book(Base):
    __tablename__ = "al_book"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    author_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("al_author.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    author: Mapped[Author] = relationship(back_populates="books")
