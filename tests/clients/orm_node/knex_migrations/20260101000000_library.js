// kx_author sharded by id, kx_book by author_id (each book lives with its author, so the foreign
// key holds per shard); ids come from sequences in kx_meta.
exports.up = (knex) =>
  knex.schema
    .createTable('kx_author', (t) => {
      t.bigIncrements('id');
      t.string('name', 100).notNullable();
      t.string('email', 100).notNullable().unique();
    })
    .createTable('kx_book', (t) => {
      t.bigIncrements('id');
      t.bigInteger('author_id').unsigned().notNullable().references('id').inTable('kx_author');
      t.string('title', 200).notNullable().index();
    });

exports.down = (knex) => knex.schema.dropTable('kx_book').dropTable('kx_author');
