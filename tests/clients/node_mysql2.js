// mysql2 through shardgate: execute() (prepared statements, binary protocol) and query() (text).
// Creates rows, reads them back by shard key and by scatter, updates, deletes, checks each
// result. Run by tests/clients.rs as `node node_mysql2.js HOST PORT`; a failed check throws.
'use strict';
const assert = require('node:assert/strict');
const mysql = require('mysql2/promise');

async function main() {
  const [host, port] = [process.argv[2], Number(process.argv[3])];
  const conn = await mysql.createConnection({
    host, port, user: 'app', password: 'secret', database: 'two',
    decimalNumbers: false, dateStrings: true, supportBigNumbers: true,
  });
  await conn.query('DROP TABLE IF EXISTS node_people');
  await conn.query('CREATE TABLE node_people (id BIGINT PRIMARY KEY, name VARCHAR(50) NOT NULL, ' +
    'score DECIMAL(6,2) NULL, seen DATETIME NULL, tags JSON NULL)');

  // query(): text protocol, values escaped by the driver.
  const rows = [];
  for (let i = 1; i <= 20; i++) rows.push([i, `query ${i}`, (i / 4).toFixed(2), `2024-03-${String(i).padStart(2, '0')} 10:00:00`]);
  const [ins] = await conn.query('INSERT INTO node_people (id, name, score, seen) VALUES ?', [rows]);
  assert.equal(ins.affectedRows, 20);

  // execute(): prepared statements; the same statement executed many times.
  for (let i = 21; i <= 40; i++) {
    const [r] = await conn.execute('INSERT INTO node_people (id, name, score, seen, tags) VALUES (?, ?, ?, ?, ?)',
      [i, `execute ${i}`, '1.25', new Date(Date.UTC(2024, 4, 1, 12, 30, 45)), JSON.stringify({ i })]);
    assert.equal(r.affectedRows, 1);
  }
  const [byKey] = await conn.execute('SELECT id, name, score FROM node_people WHERE id = ?', [7]);
  assert.deepEqual(byKey, [{ id: 7, name: 'query 7', score: '1.75' }]);
  const [byKey2] = await conn.execute('SELECT name, tags FROM node_people WHERE id = ?', [33]);
  // MariaDB's JSON is LONGTEXT: the text comes back as stored (as it does from MariaDB itself).
  assert.deepEqual(byKey2, [{ name: 'execute 33', tags: '{"i":33}' }]);
  const [agg] = await conn.execute('SELECT COUNT(*) AS n, SUM(score) AS s FROM node_people WHERE id > ?', [10]);
  assert.deepEqual(agg, [{ n: 30, s: '63.75' }]);
  const [top] = await conn.query('SELECT id FROM node_people ORDER BY score DESC, id LIMIT 3');
  assert.deepEqual(top.map(r => r.id), [20, 19, 18]);
  const [upd] = await conn.execute('UPDATE node_people SET name = ? WHERE id IN (?, ?)', ['changed', 2, 25]);
  assert.equal(upd.affectedRows, 2);
  const [del] = await conn.query('DELETE FROM node_people WHERE id > 35');
  assert.equal(del.affectedRows, 5);

  // A transaction across shards, rolled back.
  await conn.beginTransaction();
  await conn.execute('DELETE FROM node_people WHERE id = ?', [1]);
  await conn.execute('DELETE FROM node_people WHERE id = ?', [2]);
  await conn.rollback();
  const [[{ n }]] = await conn.query('SELECT COUNT(*) AS n FROM node_people');
  assert.equal(n, 35);
  const [named] = await conn.execute('SELECT id FROM node_people WHERE name = ? ORDER BY id', ['changed']);
  assert.deepEqual(named.map(r => r.id), [2, 25]);
  await conn.end();
  console.log('ok mysql2 execute() and query()');
}

main().catch(e => { console.error(e); process.exit(1); });
