// Knex through shardgate: migrate.latest (its bookkeeping tables land in the keyspace's
// unlisted-tables keyspace), CRUD, a transaction and a rollback.
const path = require('path');
const { host, port, keyspace, check, run } = require('./common');

run(async () => {
  const knex = require('knex')({
    client: 'mysql2',
    connection: { host, port, user: 'app', password: 'secret', database: keyspace },
    migrations: { directory: path.join(__dirname, 'knex_migrations') },
  });
  const [batch, applied] = await knex.migrate.latest();
  check(batch === 1 && applied.length === 1, `migrate.latest: ${batch} ${applied}`);
  const [, again] = await knex.migrate.latest();
  check(again.length === 0, 'nothing left to migrate');
  check(await knex.schema.hasTable('kx_book'), 'hasTable');
  check(await knex.schema.hasColumn('kx_book', 'author_id'), 'hasColumn');

  const ids = [];
  for (let i = 0; i < 10; i++) {
    const [id] = await knex('kx_author').insert({ name: `author ${i}`, email: `a${i}@example.com` });
    ids.push(id);
    await knex('kx_book').insert({ author_id: id, title: `author ${i} book 1` });
    await knex('kx_book').insert({ author_id: id, title: `author ${i} book 2` });
  }
  check(new Set(ids).size === 10 && ids.every((id) => id > 0), `distinct ids ${ids}`);
  const [{ n }] = await knex('kx_book').count({ n: '*' });
  check(Number(n) === 20, `book count ${n}`);
  const titles = await knex('kx_book')
    .join('kx_author', 'kx_author.id', 'kx_book.author_id')
    .where('kx_author.email', 'a4@example.com')
    .orderBy('kx_book.title')
    .pluck('kx_book.title');
  check(titles.join() === 'author 4 book 1,author 4 book 2', `join ${titles}`);
  await knex('kx_author').where({ id: ids[0] }).update({ name: 'renamed' });
  await knex('kx_book').where({ author_id: ids[1] }).del();
  await knex('kx_author').where({ id: ids[1] }).del();

  await knex.transaction(async (trx) => {
    await trx('kx_author').insert({ name: 'committed', email: 'committed@example.com' });
  });
  try {
    await knex.transaction(async (trx) => {
      const [id] = await trx('kx_author').insert({ name: 'rolled back', email: 'rb@example.com' });
      await trx('kx_book').insert({ author_id: id, title: 'rolled back book' });
      throw new Error('roll back');
    });
  } catch (e) {
    check(e.message === 'roll back', `rollback: ${e}`);
  }
  const names = await knex('kx_author').pluck('name');
  check(names.includes('committed') && names.includes('renamed'), `commit ${names}`);
  check(!names.includes('rolled back') && names.length === 10, `rollback ${names}`);
  await knex.destroy();
  console.log('ok knex');
});
