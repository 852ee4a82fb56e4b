// Sequelize through shardgate: sync (create, then alter, which introspects), CRUD, a transaction
// and a rollback. sq_author is sharded by id, sq_book by author_id; ids come from sequences.
const { Sequelize, DataTypes } = require('sequelize');
const { host, port, keyspace, check, run } = require('./common');

run(async () => {
  const sequelize = new Sequelize(keyspace, 'app', 'secret', {
    host,
    port,
    dialect: 'mysql',
    logging: false,
  });
  const Author = sequelize.define(
    'Author',
    {
      id: { type: DataTypes.BIGINT, autoIncrement: true, primaryKey: true },
      name: { type: DataTypes.STRING(100), allowNull: false },
      email: { type: DataTypes.STRING(100), allowNull: false, unique: true },
    },
    { tableName: 'sq_author', timestamps: false },
  );
  const Book = sequelize.define(
    'Book',
    {
      id: { type: DataTypes.BIGINT, autoIncrement: true, primaryKey: true },
      title: { type: DataTypes.STRING(200), allowNull: false },
    },
    { tableName: 'sq_book', timestamps: false, indexes: [{ fields: ['title'] }] },
  );
  Author.hasMany(Book, { foreignKey: { name: 'author_id', allowNull: false }, as: 'books' });
  Book.belongsTo(Author, { foreignKey: 'author_id', as: 'author' });

  await sequelize.sync();
  // Again, comparing the models with the tables as information_schema describes them.
  await sequelize.sync({ alter: true });
  const tables = (await sequelize.getQueryInterface().showAllTables()).map((t) => t.tableName || t).sort();
  check(JSON.stringify(tables) === JSON.stringify(['sq_author', 'sq_book']), `tables ${tables}`);
  const described = await sequelize.getQueryInterface().describeTable('sq_book');
  check(described.author_id && described.title && described.author_id.allowNull === false, 'describeTable');

  const ids = [];
  for (let i = 0; i < 10; i++) {
    const a = await Author.create({ name: `author ${i}`, email: `a${i}@example.com` });
    ids.push(a.id);
    await Book.bulkCreate([
      { title: `author ${i} book 1`, author_id: a.id },
      { title: `author ${i} book 2`, author_id: a.id },
    ]);
  }
  check(new Set(ids.map(String)).size === 10, `distinct ids ${ids}`);
  check((await Book.count()) === 20, 'book count');
  const withBooks = await Author.findByPk(ids[2], { include: [{ model: Book, as: 'books' }] });
  const titles = withBooks.books.map((b) => b.title).sort();
  check(JSON.stringify(titles) === JSON.stringify(['author 2 book 1', 'author 2 book 2']), `include ${titles}`);
  await Author.update({ name: 'renamed' }, { where: { id: ids[0] } });
  check((await Author.findByPk(ids[0])).name === 'renamed', 'update');
  await Book.destroy({ where: { author_id: ids[1] } });
  await Author.destroy({ where: { id: ids[1] } });
  check((await Author.count()) === 9 && (await Book.count()) === 18, 'destroy');

  await sequelize.transaction(async (transaction) => {
    await Author.create({ name: 'committed', email: 'committed@example.com' }, { transaction });
  });
  try {
    await sequelize.transaction(async (transaction) => {
      const a = await Author.create({ name: 'rolled back', email: 'rb@example.com' }, { transaction });
      await Book.create({ title: 'rolled back book', author_id: a.id }, { transaction });
      throw new Error('roll back');
    });
  } catch (e) {
    check(e.message === 'roll back', `rollback: ${e}`);
  }
  check((await Author.count({ where: { name: 'committed' } })) === 1, 'commit');
  check((await Author.count({ where: { name: 'rolled back' } })) === 0, 'rollback');
  check((await Book.count({ where: { title: 'rolled back book' } })) === 0, 'rollback of the book');
  await sequelize.close();
  console.log('ok sequelize');
});
