// TypeORM through shardgate: synchronize (create, then a schema diff that must be empty), CRUD
// with relations, a transaction and a rollback. ty_author is sharded by id, ty_book by
// author_id; ids come from sequences.
require('reflect-metadata');
const { DataSource, EntitySchema } = require('typeorm');
const { host, port, keyspace, check, run } = require('./common');

const Author = new EntitySchema({
  name: 'Author',
  tableName: 'ty_author',
  columns: {
    id: { type: 'bigint', primary: true, generated: 'increment' },
    name: { type: 'varchar', length: 100 },
    email: { type: 'varchar', length: 100, unique: true },
  },
  relations: { books: { type: 'one-to-many', target: 'Book', inverseSide: 'author' } },
});
const Book = new EntitySchema({
  name: 'Book',
  tableName: 'ty_book',
  columns: {
    id: { type: 'bigint', primary: true, generated: 'increment' },
    title: { type: 'varchar', length: 200 },
    author_id: { type: 'bigint' },
  },
  relations: {
    author: { type: 'many-to-one', target: 'Author', joinColumn: { name: 'author_id' }, inverseSide: 'books' },
  },
  indices: [{ name: 'IDX_ty_book_title', columns: ['title'] }],
});

run(async () => {
  const options = {
    type: 'mysql',
    host,
    port,
    username: 'app',
    password: 'secret',
    database: keyspace,
    entities: [Author, Book],
    logging: false,
  };
  const ds = new DataSource({ ...options, synchronize: true });
  await ds.initialize();
  // What synchronize would do now: nothing.
  const pending = await ds.driver.createSchemaBuilder().log();
  check(pending.upQueries.length === 0, `pending schema changes: ${pending.upQueries.map((q) => q.query).join('; ')}`);

  const authors = ds.getRepository('Author');
  const books = ds.getRepository('Book');
  const ids = [];
  for (let i = 0; i < 10; i++) {
    const a = await authors.save({ name: `author ${i}`, email: `a${i}@example.com` });
    ids.push(String(a.id));
    await books.save([
      { title: `author ${i} book 1`, author_id: a.id },
      { title: `author ${i} book 2`, author_id: a.id },
    ]);
  }
  check(new Set(ids).size === 10, `distinct ids ${ids}`);
  check((await books.count()) === 20, 'book count');
  const a3 = await authors.findOne({ where: { id: ids[3] }, relations: { books: true } });
  const titles = a3.books.map((b) => b.title).sort();
  check(JSON.stringify(titles) === JSON.stringify(['author 3 book 1', 'author 3 book 2']), `relation ${titles}`);
  const joined = await books
    .createQueryBuilder('b')
    .innerJoin('b.author', 'a')
    .where('a.email = :email', { email: 'a8@example.com' })
    .orderBy('b.title')
    .getMany();
  check(joined.map((b) => b.title).join() === 'author 8 book 1,author 8 book 2', 'join');
  await authors.update({ id: ids[0] }, { name: 'renamed' });
  await books.delete({ author_id: ids[1] });
  await authors.delete({ id: ids[1] });
  check((await authors.count()) === 9 && (await books.count()) === 18, 'delete');

  await ds.transaction(async (m) => {
    await m.getRepository('Author').save({ name: 'committed', email: 'committed@example.com' });
  });
  try {
    await ds.transaction(async (m) => {
      const a = await m.getRepository('Author').save({ name: 'rolled back', email: 'rb@example.com' });
      await m.getRepository('Book').save({ title: 'rolled back book', author_id: a.id });
      throw new Error('roll back');
    });
  } catch (e) {
    check(e.message === 'roll back', `rollback: ${e}`);
  }
  check((await authors.countBy({ name: 'committed' })) === 1, 'commit');
  check((await authors.countBy({ name: 'rolled back' })) === 0, 'rollback');
  check((await books.countBy({ title: 'rolled back book' })) === 0, 'rollback of the book');
  await ds.destroy();
  console.log('ok typeorm');
});
