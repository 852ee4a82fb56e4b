# The differential corpus: each statement runs through the proxy (keyspace `KS`, run once with 2
# shards and once with 4) and against one reference database holding the same rows; results must
# match, as multisets unless an ORDER BY fixes the order (every ORDER BY here is total: ties are
# broken by a unique column). `refused:` lines must get error 1235 from the proxy, its message
# holding the words after `  # ` (naming what is refused); the reference runs them in a
# rolled-back transaction to prove they are valid SQL; `error:` lines must fail the
# same way on both; `approx:` lines compare doubles to 12 significant digits. `KS.` names the proxy's keyspace; the reference reads it as its own database.
# Data: customers (-10..189) with mixed-case, accented, Korean and emoji names, NULL cities, notes
# and scores; orders (600) with DECIMAL prices and DATETIMEs; products (reference, 20 rows); misc
# (empty); words (33) with text in general_ci, _bin, CHAR and utf8mb3.

# --- point selects and routing
SELECT * FROM customers WHERE id = 17
SELECT * FROM customers WHERE id = -3
SELECT name, city FROM customers WHERE id = '42'
SELECT * FROM customers WHERE id = 999999
SELECT * FROM customers WHERE city = 'Lyon' AND id = 8
SELECT * FROM customers WHERE 25 = id
SELECT c.name FROM customers c WHERE c.id = 33
SELECT * FROM customers WHERE id IN (1, 2, 3, 4, 5, 6, 7, 8)
SELECT * FROM customers WHERE id IN (-1, -2, 150)
SELECT id, balance FROM customers WHERE id IN ('10', '11')
SELECT * FROM customers WHERE id = 1.0
SELECT * FROM customers WHERE id = 12 OR id = 90
SELECT * FROM customers WHERE id NOT IN (1, 2, 3)
SELECT * FROM customers WHERE id BETWEEN 10 AND 20
SELECT * FROM KS.customers WHERE id = 5
SELECT * FROM orders WHERE customer_id = 7 AND qty > 2
# --- scatter without merging
SELECT * FROM customers
SELECT id, name FROM customers WHERE city = 'Oslo'
SELECT id, balance * 2 AS double_balance FROM customers WHERE balance > 500
SELECT id, UPPER(name), LENGTH(city) FROM customers WHERE created >= '2024-03-01'
SELECT * FROM customers WHERE note IS NULL
SELECT id, COALESCE(note, 'none') FROM customers WHERE id < 0
SELECT * FROM orders WHERE qty > 3
SELECT order_id, price * qty FROM orders WHERE product_id = 4
SELECT * FROM customers WHERE name LIKE 'C%'
SELECT id, CASE WHEN balance > 100 THEN 'rich' ELSE 'poor' END FROM customers
SELECT id FROM customers WHERE id IN (SELECT id FROM products WHERE price > 20)
SELECT o.order_id, p.name FROM orders o JOIN products p ON p.id = o.product_id
SELECT o.order_id, p.name FROM orders o LEFT JOIN products p ON p.id = o.product_id AND p.price > 10
SELECT o.order_id, p.name FROM orders o JOIN products p ON p.id = o.product_id WHERE o.customer_id = 7
SELECT name FROM customers HAVING name LIKE 'A%'
SELECT * FROM customers WHERE name = 'ana'
SELECT * FROM customers WHERE name = '김민준'
SELECT id FROM customers WHERE city IS NULL
# --- single-shard queries keep everything
SELECT * FROM orders WHERE customer_id = 7 ORDER BY order_id
SELECT * FROM orders WHERE customer_id = 7 ORDER BY order_id DESC LIMIT 2
SELECT COUNT(*), SUM(qty), MIN(price), MAX(price), AVG(price) FROM orders WHERE customer_id = 9
SELECT product_id, COUNT(*) FROM orders WHERE customer_id = 11 GROUP BY product_id ORDER BY product_id
SELECT DISTINCT product_id FROM orders WHERE customer_id = 12 ORDER BY product_id
SELECT customer_id, COUNT(*) FROM orders WHERE customer_id IN (1, 2) GROUP BY customer_id HAVING COUNT(*) > 0 ORDER BY customer_id
SELECT * FROM orders WHERE customer_id = 13 AND order_id > 0 ORDER BY price, order_id LIMIT 1, 2
# --- ORDER BY across shards
SELECT * FROM customers ORDER BY id
SELECT * FROM customers ORDER BY id DESC
SELECT id, name FROM customers ORDER BY name, id
SELECT id, name FROM customers ORDER BY name DESC, id DESC
SELECT id, name FROM customers ORDER BY name, id DESC
SELECT id, city FROM customers ORDER BY city, id
SELECT id, city FROM customers ORDER BY city DESC, id
SELECT id, balance FROM customers ORDER BY balance, id
SELECT id, balance FROM customers ORDER BY balance DESC, id
SELECT id, created FROM customers ORDER BY created, id
SELECT id, created FROM customers ORDER BY created DESC, id DESC
SELECT id, score FROM customers ORDER BY score, id
SELECT id, score FROM customers ORDER BY score DESC, id
SELECT id, note FROM customers ORDER BY note, id
SELECT order_id, placed FROM orders ORDER BY placed, order_id
SELECT order_id, price FROM orders ORDER BY price DESC, order_id
SELECT order_id, price * qty AS total FROM orders ORDER BY total DESC, order_id
SELECT order_id, price * qty FROM orders ORDER BY 2, 1
SELECT name, id FROM customers ORDER BY 1, 2
SELECT name AS n, id FROM customers ORDER BY n DESC, id
SELECT name FROM customers ORDER BY id
SELECT name FROM customers ORDER BY balance DESC, id
SELECT id FROM customers ORDER BY LENGTH(name), id
SELECT id, name FROM customers ORDER BY UPPER(name), id
SELECT id, name FROM customers WHERE id IN (1, 50, 100, 150) ORDER BY name, id
SELECT id, name FROM customers WHERE city = 'Rome' ORDER BY name DESC, id
SELECT * FROM customers ORDER BY city, name, id
SELECT c.id, c.name FROM customers c ORDER BY c.name, c.id
SELECT o.order_id, p.name FROM orders o JOIN products p ON p.id = o.product_id ORDER BY p.name, o.order_id
SELECT id, balance - score AS diff FROM customers ORDER BY diff, id
SELECT id, -balance FROM customers ORDER BY -balance, id
SELECT id, name FROM customers ORDER BY name COLLATE utf8mb4_bin, id
SELECT id, BINARY name FROM customers ORDER BY BINARY name, id
SELECT customer_id, order_id FROM orders WHERE qty = 3 ORDER BY customer_id DESC, order_id
# text keys that the proxy weighs itself, knowing the columns' collations from the catalog
SELECT id, ci FROM words ORDER BY ci, id
SELECT id, ci FROM words ORDER BY ci DESC, id
SELECT id, bin FROM words ORDER BY bin, id
SELECT id, bin FROM words ORDER BY bin DESC, id DESC
SELECT id, fixed FROM words ORDER BY fixed, id
SELECT id, mb3 FROM words ORDER BY mb3 DESC, id
SELECT w.id FROM words w ORDER BY w.ci, w.id LIMIT 7
SELECT id, ci FROM words ORDER BY ci, id LIMIT 3, 4
SELECT MIN(id), COUNT(*) FROM words GROUP BY ci ORDER BY 1
SELECT MIN(id), COUNT(*) FROM words GROUP BY bin ORDER BY 1
SELECT MIN(id), COUNT(*) FROM words GROUP BY fixed, mb3 ORDER BY 1
SELECT DISTINCT bin FROM words WHERE bin NOT LIKE '% ' ORDER BY bin
SELECT DISTINCT bin FROM words WHERE bin NOT LIKE '% ' ORDER BY bin DESC LIMIT 5
# an expression's collation is the shards' to weigh, and their weights cannot order a tab
SELECT id, ci FROM words WHERE id > 600 ORDER BY UPPER(ci), id
refused: SELECT id, ci FROM words ORDER BY UPPER(ci), id  # control character
refused: SELECT MIN(CONCAT(bin, '')) FROM words WHERE bin LIKE 'a%'  # control character
# --- LIMIT and OFFSET across shards
SELECT * FROM customers ORDER BY id LIMIT 5
SELECT * FROM customers ORDER BY id DESC LIMIT 5
SELECT id, name FROM customers ORDER BY name, id LIMIT 10
SELECT id, name FROM customers ORDER BY name, id LIMIT 10, 5
SELECT id, name FROM customers ORDER BY name DESC, id LIMIT 3 OFFSET 7
SELECT id FROM customers ORDER BY balance, id LIMIT 0
SELECT id FROM customers ORDER BY id LIMIT 1000
SELECT id FROM customers ORDER BY id LIMIT 190, 100
SELECT order_id FROM orders ORDER BY price DESC, order_id LIMIT 1
SELECT order_id, placed FROM orders ORDER BY placed DESC, order_id LIMIT 20
SELECT id, city FROM customers WHERE city IS NOT NULL ORDER BY city, id LIMIT 4
SELECT id FROM customers WHERE id IN (3, 4, 5, 6, 7) ORDER BY id LIMIT 2
SELECT name FROM customers ORDER BY id LIMIT 3
SELECT * FROM misc ORDER BY id LIMIT 5
# --- aggregates without GROUP BY
SELECT COUNT(*) FROM customers
SELECT COUNT(*) FROM orders
SELECT COUNT(city) FROM customers
SELECT COUNT(note), COUNT(score) FROM customers
SELECT SUM(balance) FROM customers
SELECT SUM(score) FROM customers
SELECT SUM(qty), SUM(price) FROM orders
SELECT MIN(id), MAX(id) FROM customers
SELECT MIN(balance), MAX(balance) FROM customers
SELECT MIN(created), MAX(created) FROM customers
SELECT MIN(placed), MAX(placed) FROM orders
SELECT MIN(city), MAX(city) FROM customers
SELECT MIN(score), MAX(score) FROM customers
SELECT AVG(balance) FROM customers
SELECT AVG(score) FROM customers
SELECT AVG(qty), AVG(price) FROM orders
SELECT COUNT(*), SUM(qty), MIN(price), MAX(price), AVG(price) FROM orders
SELECT COUNT(*) AS n, SUM(balance) AS total FROM customers WHERE city = 'Oslo'
SELECT COUNT(*), SUM(balance), AVG(balance), MIN(name), MAX(balance) FROM customers WHERE id > 100000
SELECT COUNT(*), SUM(v), AVG(v), MIN(s), MAX(v) FROM misc
SELECT COUNT(DISTINCT city) FROM customers
SELECT COUNT(DISTINCT name) FROM customers
SELECT COUNT(DISTINCT product_id), COUNT(*) FROM orders
SELECT SUM(DISTINCT qty) FROM orders
SELECT COUNT(DISTINCT score), SUM(DISTINCT score) FROM customers
SELECT COUNT(DISTINCT v) FROM misc
SELECT COUNT(*) FROM customers WHERE id IN (1, 100)
SELECT SUM(balance) FROM customers WHERE id IN (1, 2, 3, 4, 5, 6)
SELECT MAX(price) FROM orders WHERE customer_id IN (5, 6, 7, 8)
SELECT COUNT(*) FROM customers WHERE name = 'ana'
SELECT COUNT(*), MIN(id) FROM customers WHERE name LIKE '%민%'
# --- GROUP BY across shards
SELECT city, COUNT(*) FROM customers GROUP BY city
SELECT city, COUNT(*) FROM customers GROUP BY city ORDER BY city
SELECT DISTINCT city FROM customers WHERE id BETWEEN 2 AND 40 ORDER BY city
SELECT DISTINCT city, id % 3 FROM customers ORDER BY city
SELECT city FROM customers GROUP BY city ORDER BY city
SELECT city, COUNT(*) FROM customers GROUP BY city ORDER BY COUNT(*) DESC, city
SELECT city, COUNT(*) AS n FROM customers GROUP BY city ORDER BY n, city
SELECT city, SUM(balance), AVG(balance) FROM customers GROUP BY city ORDER BY city
SELECT city, MIN(id), MAX(id) FROM customers GROUP BY city ORDER BY 2
SELECT city, MIN(created), MAX(created) FROM customers GROUP BY city ORDER BY city
SELECT customer_id, COUNT(*) FROM orders GROUP BY customer_id
SELECT customer_id, COUNT(*), SUM(qty), AVG(price) FROM orders GROUP BY customer_id ORDER BY customer_id
SELECT customer_id, SUM(price * qty) AS spent FROM orders GROUP BY customer_id ORDER BY spent DESC, customer_id LIMIT 10
SELECT product_id, COUNT(*), MIN(placed) FROM orders GROUP BY product_id ORDER BY product_id
SELECT product_id, COUNT(DISTINCT customer_id) FROM orders GROUP BY product_id ORDER BY product_id
SELECT product_id, SUM(DISTINCT qty), COUNT(*) FROM orders GROUP BY product_id ORDER BY product_id
SELECT qty, COUNT(*) FROM orders GROUP BY qty ORDER BY qty DESC
SELECT qty > 3, COUNT(*) FROM orders GROUP BY qty > 3
SELECT COUNT(*) FROM orders GROUP BY product_id
SELECT COUNT(*) FROM customers GROUP BY city ORDER BY COUNT(*), MIN(id)
SELECT city, score, COUNT(*) FROM customers GROUP BY city, score ORDER BY city, score
SELECT score, city, COUNT(*) FROM customers GROUP BY 1, 2 ORDER BY 1, 2
SELECT YEAR(created) AS y, MONTH(created) AS m, COUNT(*) FROM customers GROUP BY y, m ORDER BY y, m
SELECT DATE(placed) AS d, SUM(price) FROM orders GROUP BY d ORDER BY d LIMIT 7
SELECT city, COUNT(*) FROM customers WHERE balance > 100 GROUP BY city ORDER BY city
SELECT city, COUNT(*) FROM customers GROUP BY city HAVING COUNT(*) > 30 ORDER BY city
SELECT city, COUNT(*) FROM customers GROUP BY city HAVING COUNT(*) > 30 AND SUM(balance) > 1000 ORDER BY city
SELECT city FROM customers GROUP BY city HAVING MAX(balance) > 900 ORDER BY city
SELECT customer_id FROM orders GROUP BY customer_id HAVING SUM(qty) >= 20 ORDER BY customer_id
SELECT customer_id, SUM(qty) s FROM orders GROUP BY customer_id HAVING s < 5 ORDER BY customer_id
SELECT customer_id FROM orders GROUP BY customer_id HAVING AVG(price) > 40 ORDER BY customer_id
# --- any expression over merged aggregates: a shard evaluates it over the merged values, typed
# as the statement types its inputs
SELECT customer_id, COALESCE(SUM(price), 0) AS total, CASE WHEN COUNT(*) > 3 THEN 'many' ELSE 'few' END FROM orders GROUP BY customer_id ORDER BY customer_id
SELECT IFNULL(MAX(price), -1), CONCAT('n=', COUNT(*)), IF(SUM(qty) > 10, 'y', 'n') FROM orders WHERE price > 100000
SELECT city, UPPER(MIN(name)), LENGTH(MAX(name)), CONCAT(city, ':', COUNT(*)) AS label FROM customers GROUP BY city ORDER BY city
SELECT product_id, GREATEST(MAX(qty), 3), LEAST(MIN(price), 5.5), ABS(MIN(customer_id) - 50) FROM orders GROUP BY product_id ORDER BY product_id
SELECT DATE_FORMAT(MAX(placed), '%Y-%m'), DATEDIFF(MAX(placed), MIN(placed)), YEAR(MIN(placed)) FROM orders
SELECT city, CASE WHEN AVG(balance) > 500 THEN 'rich' WHEN AVG(balance) IS NULL THEN 'none' ELSE 'poor' END AS band, COUNT(*) FROM customers GROUP BY city ORDER BY city
SELECT NULLIF(COUNT(score), COUNT(*)), COUNT(*) - COUNT(score), FORMAT(SUM(balance), 2) FROM customers
SELECT COALESCE(SUM(v), 0), IFNULL(MIN(s), 'none') FROM misc
SELECT customer_id, IF(MAX(qty) = MIN(qty), 'same', 'mixed') AS q FROM orders WHERE customer_id < 20 GROUP BY customer_id HAVING COUNT(*) > 1 ORDER BY customer_id LIMIT 5
SELECT city, CONCAT(COUNT(*), ' of ', MIN(id)) FROM customers GROUP BY city WITH ROLLUP
SELECT customer_id, COALESCE(SUM(price), 0) AS total FROM orders GROUP BY customer_id ORDER BY total DESC, customer_id LIMIT 5
SELECT city, CONCAT(UPPER(city), COUNT(*)) AS label FROM customers GROUP BY city ORDER BY label, city
SELECT product_id, IF(SUM(qty) > 50, 'big', 'small') AS s, SUM(qty) FROM orders GROUP BY product_id ORDER BY s DESC, 3, product_id LIMIT 2, 6
refused: SELECT customer_id, COALESCE(SUM(price), 0) AS total FROM orders GROUP BY customer_id ORDER BY total, MIN(qty)  # not a select item
# --- BIT_AND / BIT_OR / BIT_XOR: shards' results combined bit by bit (NULLs ignored, identity on no rows)
SELECT BIT_OR(qty), BIT_AND(qty), BIT_XOR(qty) FROM orders
SELECT product_id, BIT_XOR(customer_id), BIT_OR(qty) FROM orders GROUP BY product_id ORDER BY product_id
SELECT BIT_AND(score), BIT_OR(score), BIT_XOR(score) FROM customers
SELECT BIT_AND(v), BIT_OR(v), BIT_XOR(v) FROM misc
SELECT city, BIT_XOR(id) FROM customers GROUP BY city HAVING BIT_OR(id) > 100 ORDER BY city
# --- functions over merged aggregates (ROUND of a quotient rounds the digits the server keeps)
SELECT ROUND(AVG(price), 1) FROM orders
SELECT ROUND(AVG(qty)), ROUND(AVG(qty), 3), ROUND(AVG(price), 6) FROM orders
SELECT product_id, ROUND(SUM(price) / COUNT(*), 2) AS r FROM orders GROUP BY product_id ORDER BY product_id
SELECT product_id, ROUND(AVG(price), -1), ROUND(SUM(qty), -1) FROM orders GROUP BY product_id ORDER BY product_id
SELECT city, ROUND(AVG(balance), 2), COUNT(*) FROM customers GROUP BY city HAVING ROUND(AVG(balance), 1) > 0 ORDER BY city
SELECT ROUND(SUM(qty) / 7, 3), ROUND(MAX(price)), ROUND(MIN(balance), 1) + 1 FROM orders, customers WHERE customers.id = orders.customer_id AND customers.id = 5
SELECT ROUND(AVG(balance) , 2) AS avg_balance FROM customers WHERE id > 100000
SELECT customer_id, COUNT(*) FROM orders GROUP BY customer_id HAVING COUNT(*) = 3 OR COUNT(*) = 5 ORDER BY customer_id
SELECT customer_id FROM orders GROUP BY customer_id HAVING NOT COUNT(*) > 2 ORDER BY customer_id
SELECT customer_id FROM orders GROUP BY customer_id HAVING MIN(price) IS NULL
SELECT customer_id, COUNT(*) FROM orders GROUP BY customer_id ORDER BY COUNT(*) DESC, customer_id LIMIT 5
SELECT customer_id, COUNT(*) FROM orders GROUP BY customer_id ORDER BY COUNT(*) DESC, customer_id LIMIT 5, 5
SELECT city, COUNT(*) FROM customers WHERE id IN (1, 2, 3, 100, 101) GROUP BY city ORDER BY city
SELECT v, COUNT(*) FROM misc GROUP BY v
SELECT p.name, COUNT(*) FROM orders o JOIN products p ON p.id = o.product_id GROUP BY p.name ORDER BY p.name
SELECT city, MAX(name) FROM customers WHERE name NOT IN ('ana', 'ANA', 'Ana', 'zoe', 'Zoë', 'ZOE', 'Ben', 'bén') GROUP BY city ORDER BY city
SELECT COUNT(*), MIN(id) FROM customers GROUP BY name ORDER BY MIN(id)
# --- DISTINCT across shards
SELECT DISTINCT city FROM customers
SELECT DISTINCT city FROM customers ORDER BY city
SELECT DISTINCT city FROM customers ORDER BY city DESC LIMIT 3
SELECT DISTINCT qty FROM orders ORDER BY qty
SELECT DISTINCT product_id, qty FROM orders ORDER BY product_id, qty
SELECT DISTINCT score FROM customers ORDER BY score
SELECT DISTINCT created FROM customers ORDER BY created LIMIT 5
SELECT DISTINCT YEAR(placed) FROM orders
SELECT DISTINCT v FROM misc
SELECT DISTINCT city FROM customers WHERE id IN (1, 2, 3, 4, 5, 6, 7, 8) ORDER BY city
# --- reference tables and table-less selects
SELECT * FROM products
SELECT * FROM products ORDER BY price DESC, id
SELECT COUNT(*), SUM(price) FROM products
SELECT 1 + 1, 'x', NULL
SELECT CONCAT('a', 'b'), 7 DIV 2, 2.50 * 4
# --- joins and subqueries whose rows live together: pinned to one shard, or co-located on the
# vindex columns (orders are sharded by customer_id with customers' vindex)
SELECT c.name, o.order_id FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = 5
SELECT c.name, o.order_id, o.qty FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.customer_id = 11
SELECT c.name, o.order_id FROM customers c, orders o WHERE c.id = o.customer_id AND c.id = 18
SELECT * FROM customers JOIN orders ON orders.customer_id = customers.id WHERE customers.id = 9
SELECT c.id, c.name, o.order_id FROM customers c JOIN orders o ON o.customer_id = c.id
SELECT c.id, o.order_id FROM customers c JOIN orders o ON c.id = o.customer_id WHERE o.qty > 4
SELECT c.id, o.order_id FROM customers c INNER JOIN orders o ON o.customer_id = c.id AND o.price > 40
SELECT c.id, o.order_id FROM customers c STRAIGHT_JOIN orders o ON o.customer_id = c.id WHERE c.id < 0
SELECT c.id, o.order_id FROM customers c LEFT JOIN orders o ON o.customer_id = c.id
SELECT c.id, o.order_id FROM customers c LEFT JOIN orders o ON o.customer_id = c.id WHERE o.order_id IS NULL
SELECT c.id, o.order_id FROM customers c LEFT JOIN orders o ON o.customer_id = c.id AND o.qty > 5
SELECT c.id, o.order_id FROM customers c LEFT JOIN orders o ON o.customer_id = c.id AND o.customer_id = 5 WHERE c.id < 10
SELECT c.id, o.order_id FROM orders o RIGHT JOIN customers c ON o.customer_id = c.id
SELECT c.id, o.order_id FROM orders o RIGHT JOIN customers c ON o.customer_id = c.id WHERE c.id = 40
SELECT c.id, o.order_id, p.name FROM customers c JOIN orders o ON o.customer_id = c.id JOIN products p ON p.id = o.product_id WHERE c.id = 7
SELECT c.id, o.order_id, p.name FROM customers c JOIN orders o ON o.customer_id = c.id LEFT JOIN products p ON p.id = o.product_id AND p.price > 30
SELECT c.id, o1.order_id, o2.order_id FROM customers c JOIN orders o1 ON o1.customer_id = c.id JOIN orders o2 ON o2.customer_id = o1.customer_id AND o2.order_id > o1.order_id WHERE c.id = 30
SELECT c.id, o1.order_id, o2.order_id FROM customers c JOIN orders o1 ON o1.customer_id = c.id JOIN orders o2 ON o2.customer_id = c.id AND o2.order_id < o1.order_id
SELECT a.id, b.name FROM customers a JOIN customers b ON a.id = b.id WHERE a.score > 40
SELECT * FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id IN (3, 4, 5)
SELECT * FROM misc m JOIN customers c ON c.id = m.id
SELECT c.id FROM customers c LEFT JOIN misc m ON m.id = c.id WHERE m.id IS NULL AND c.id < 5
SELECT c.name, o.order_id FROM customers c JOIN orders o ON o.customer_id = c.id ORDER BY o.order_id
SELECT c.name, o.order_id FROM customers c JOIN orders o ON o.customer_id = c.id ORDER BY o.order_id DESC LIMIT 5
SELECT c.name, o.order_id FROM customers c JOIN orders o ON o.customer_id = c.id ORDER BY c.name, o.order_id LIMIT 10
SELECT c.id, o.order_id FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.city = 'Lyon' ORDER BY c.id, o.order_id
SELECT c.id, o.order_id FROM customers c LEFT JOIN orders o ON o.customer_id = c.id ORDER BY c.id DESC, o.order_id LIMIT 3, 6
SELECT c.id, COUNT(*), SUM(o.qty) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.id ORDER BY c.id
SELECT c.city, COUNT(*) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.city ORDER BY c.city
SELECT COUNT(*), SUM(o.price), MIN(c.balance), MAX(o.placed) FROM customers c JOIN orders o ON o.customer_id = c.id
SELECT c.id, COUNT(o.order_id) FROM customers c LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.id ORDER BY c.id
SELECT DISTINCT c.city FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.qty = 6 ORDER BY c.city
SELECT c.id, COUNT(*) AS n FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.id HAVING n > 4 ORDER BY c.id
SELECT c.id, AVG(o.qty) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.id ORDER BY c.id LIMIT 5
SELECT c.city, COUNT(*) FROM customers c JOIN orders o ON o.customer_id = c.id JOIN products p ON p.id = o.product_id WHERE p.price > 30 GROUP BY c.city ORDER BY c.city
SELECT p.name, SUM(o.qty) FROM customers c JOIN orders o ON o.customer_id = c.id JOIN products p ON p.id = o.product_id WHERE c.city = 'Rome' GROUP BY p.name ORDER BY p.name
SELECT o.order_id, ROW_NUMBER() OVER (ORDER BY o.order_id) FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = 2 ORDER BY o.order_id
SELECT * FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id AND o.qty > 5)
SELECT * FROM customers c WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)
SELECT * FROM customers c WHERE c.id = 6 AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id AND o.qty > 3)
SELECT c.id, (SELECT COUNT(*) FROM orders o WHERE o.customer_id = c.id) AS n FROM customers c
SELECT c.id, (SELECT MAX(o.price) FROM orders o WHERE o.customer_id = c.id) FROM customers c ORDER BY c.id
SELECT c.id, (SELECT SUM(o.qty) FROM orders o WHERE o.customer_id = c.id) AS total FROM customers c ORDER BY total DESC, c.id LIMIT 8
SELECT * FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE qty > 5)
SELECT * FROM customers WHERE id IN (SELECT customer_id FROM orders)
SELECT id, name FROM customers WHERE id IN (SELECT customer_id FROM orders) ORDER BY id LIMIT 7
SELECT COUNT(*) FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE product_id = 3)
SELECT c.id FROM customers c WHERE c.id IN (SELECT o.customer_id FROM orders o WHERE o.customer_id = c.id AND o.price > 40)
SELECT c.name, o.order_id FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = 5 AND o.order_id IN (SELECT x.order_id FROM orders x WHERE x.customer_id = c.id AND x.qty > 1)
SELECT * FROM products WHERE id IN (SELECT product_id FROM orders WHERE customer_id = 8)
SELECT name FROM products p WHERE EXISTS (SELECT 1 FROM orders o WHERE o.product_id = p.id AND o.customer_id = 15)
SELECT (SELECT name FROM customers WHERE id = 12), p.name FROM products p WHERE p.id < 4
SELECT t.n FROM (SELECT COUNT(*) AS n FROM orders WHERE customer_id = 3) t
SELECT t.customer_id, t.total FROM (SELECT customer_id, SUM(qty) AS total FROM orders WHERE customer_id = 21 GROUP BY customer_id) t
SELECT * FROM (SELECT o.order_id, c.name FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = 22) t ORDER BY t.order_id
WITH mine AS (SELECT * FROM orders WHERE customer_id = 6) SELECT order_id, qty FROM mine
WITH mine AS (SELECT * FROM orders WHERE customer_id = 6) SELECT m.order_id, p.name FROM mine m JOIN products p ON p.id = m.product_id
WITH big AS (SELECT id, price FROM products WHERE price > 40) SELECT o.order_id, b.price FROM orders o JOIN big b ON b.id = o.product_id
# --- subqueries correlated off the vindex: semi-joins and anti-joins at the proxy
SELECT * FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.product_id = c.id AND o.qty > 3)
SELECT c.id, c.name FROM customers c WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.product_id = c.id) ORDER BY c.id
SELECT COUNT(*), SUM(c.balance) FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.product_id = c.id AND o.price > c.balance / 100)
SELECT o.order_id, o.qty FROM orders o WHERE o.qty IN (SELECT c.score FROM customers c WHERE c.id = o.product_id) ORDER BY o.order_id
SELECT c.id FROM customers c WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.qty = c.score) ORDER BY c.id
SELECT c.id FROM customers c WHERE c.score IN (SELECT o.qty FROM orders o WHERE o.product_id = c.id) ORDER BY c.id
SELECT c.city, COUNT(*) FROM customers c WHERE c.id < 100 AND EXISTS (SELECT 1 FROM orders o WHERE o.product_id = c.id AND o.customer_id <> c.id) GROUP BY c.city ORDER BY c.city
SELECT id, name FROM customers WHERE EXISTS (SELECT 1 FROM orders o WHERE o.product_id = customers.id) ORDER BY id LIMIT 5
SELECT c.id FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.product_id = c.id LIMIT 1) AND c.balance > 500
SELECT o.order_id FROM orders o WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.score = o.qty AND c.city = 'Oslo') AND o.customer_id < 10
SELECT c.name AS n FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.product_id = c.id AND o.qty = 1) ORDER BY n, c.id
SELECT c.id FROM customers c WHERE c.score NOT IN (SELECT o.qty FROM orders o WHERE o.product_id = c.id) ORDER BY c.id
SELECT o.order_id FROM orders o WHERE o.qty NOT IN (SELECT c.score FROM customers c WHERE c.id = o.product_id + 100) AND o.customer_id < 30 ORDER BY o.order_id
SELECT COUNT(*) FROM orders o WHERE o.qty NOT IN (SELECT c.score FROM customers c WHERE c.id = o.product_id + 100 AND c.score IS NOT NULL)
SELECT c.id, o.order_id FROM customers c JOIN orders o ON o.product_id = c.id WHERE c.note IS NOT NULL AND c.city IS NULL AND o.qty IS NOT NULL ORDER BY o.order_id
refused: SELECT c.id FROM customers c WHERE c.city NOT IN (SELECT x.city FROM customers x WHERE x.score = c.id)  # the result does not say which collation applies
# aggregate subqueries in the select list, correlated off the vindex: a LEFT JOIN grouped by the outer key
SELECT c.id, (SELECT COUNT(*) FROM orders o WHERE o.product_id = c.id) FROM customers c WHERE c.id < 30 ORDER BY c.id
SELECT c.id, c.name, (SELECT SUM(o.qty) FROM orders o WHERE o.product_id = c.id AND o.price > 10) AS q FROM customers c WHERE c.id BETWEEN 1 AND 25 ORDER BY q DESC, c.id
SELECT id, name, (SELECT MAX(o.placed) FROM orders o WHERE o.product_id = customers.id) AS last FROM customers WHERE id < 12 ORDER BY id
SELECT c.id, (SELECT AVG(o.price) FROM orders o WHERE o.qty = c.score) FROM customers c WHERE c.city = 'Oslo' ORDER BY c.id
# Of one value (not an aggregate): the one match's value, NULL without any, 1242 with several;
# LIMIT 1 takes any one.
SELECT c.id, (SELECT o.qty FROM orders o WHERE o.order_id = c.id) AS q FROM customers c WHERE c.id < 40 ORDER BY c.id
SELECT c.name, (SELECT o.placed FROM orders o WHERE o.order_id = c.id + 1000) FROM customers c WHERE c.id BETWEEN 30 AND 45 ORDER BY c.id
SELECT c.id, (SELECT o.order_id FROM orders o WHERE o.product_id = c.id AND o.qty = 6 AND o.customer_id = 0 LIMIT 1) AS any_one FROM customers c WHERE c.id < 12 ORDER BY c.id
error: SELECT c.id, (SELECT o.qty FROM orders o WHERE o.product_id = c.id) FROM customers c WHERE c.id = 5
refused: SELECT c.id FROM customers c WHERE c.score = (SELECT o.qty FROM orders o WHERE o.order_id = c.id)  # a correlated subquery of one value (not an aggregate, no LIMIT 1) in WHERE
# ... and in WHERE: the condition goes to the grouping's HAVING, the aggregate in its place.
SELECT c.id, c.score FROM customers c WHERE c.score > (SELECT COUNT(*) FROM orders o WHERE o.product_id = c.id) AND c.id < 60 ORDER BY c.id
SELECT c.id FROM customers c WHERE (SELECT MAX(o.qty) FROM orders o WHERE o.product_id = c.id) IS NULL ORDER BY c.id LIMIT 10
SELECT c.name, c.id FROM customers c WHERE c.id < 30 AND (SELECT SUM(o.qty) FROM orders o WHERE o.product_id = c.id) >= 10 ORDER BY c.id
SELECT c.id, c.balance FROM customers c WHERE (SELECT AVG(o.price) FROM orders o WHERE o.product_id = c.id) * 2 > c.balance ORDER BY c.id
refused: SELECT COUNT(*) FROM customers c WHERE (SELECT COUNT(*) FROM orders o WHERE o.product_id = c.id) = 0  # a correlated subquery in WHERE of a query with aggregates
SELECT c.id, (SELECT MIN(x.balance) FROM customers x WHERE x.score = c.id) m FROM customers c WHERE c.id < 10
SELECT name, (SELECT MAX(o.placed) FROM orders o WHERE o.product_id = customers.id) AS last FROM customers WHERE id < 12 ORDER BY id
SELECT c.name, (SELECT COUNT(*) FROM orders o WHERE o.product_id = c.id) AS n FROM customers c WHERE c.id BETWEEN 20 AND 40 ORDER BY c.city DESC, c.id LIMIT 8
SELECT c.product_id, COUNT(*) FROM orders c JOIN customers x ON x.id = c.product_id GROUP BY c.product_id, x.city ORDER BY x.city, c.product_id LIMIT 7
refused: SELECT c.id FROM customers c WHERE EXISTS (SELECT COUNT(*) FROM orders o WHERE o.product_id = c.id)  # neither pinned to one shard nor correlated on its vindex column
# --- subqueries that run first (uncorrelated, on other shards or in keyspace main), their
# results spliced into the statement as literals
SELECT * FROM customers WHERE id IN (SELECT cid FROM MAIN.vip)
SELECT id, name FROM customers WHERE id IN (SELECT cid FROM MAIN.vip WHERE level = 1) ORDER BY id
SELECT * FROM customers WHERE id NOT IN (SELECT cid FROM MAIN.vip) AND id < 20
SELECT * FROM orders WHERE customer_id IN (SELECT cid FROM MAIN.vip WHERE tag = 'gold')
SELECT COUNT(*) FROM customers WHERE id IN (SELECT cid FROM MAIN.vip WHERE level > 5)
SELECT COUNT(*) FROM customers WHERE id NOT IN (SELECT cid FROM MAIN.vip WHERE level > 5)
SELECT name FROM customers WHERE name IN (SELECT tag FROM MAIN.vip)
SELECT id FROM customers WHERE city IN (SELECT city FROM customers WHERE id IN (1, 2, 3)) ORDER BY id
SELECT * FROM customers WHERE name IN (SELECT name FROM customers WHERE score = 50)
SELECT * FROM customers WHERE score NOT IN (SELECT qty FROM orders WHERE customer_id = 7)
SELECT * FROM customers WHERE score NOT IN (SELECT score FROM customers)
SELECT COUNT(*) FROM products WHERE id IN (SELECT product_id FROM orders WHERE qty = 6)
SELECT * FROM products WHERE id NOT IN (SELECT product_id FROM orders WHERE price > 40)
SELECT * FROM customers WHERE EXISTS (SELECT 1 FROM orders WHERE qty > 5) AND id < 3
SELECT * FROM customers WHERE NOT EXISTS (SELECT 1 FROM orders WHERE qty > 500) AND id < 3
SELECT COUNT(*) FROM customers WHERE EXISTS (SELECT 1 FROM MAIN.vip WHERE level = 9)
SELECT * FROM orders WHERE price > (SELECT AVG(price) FROM orders) AND qty = 6
SELECT id, balance FROM customers WHERE balance = (SELECT MAX(balance) FROM customers)
SELECT id, (SELECT COUNT(*) FROM orders) AS total FROM customers WHERE id < 3
SELECT id, (SELECT COUNT(*) FROM orders), ( SELECT MAX(placed) FROM orders WHERE qty = 2 ) FROM customers WHERE id < 2
SELECT id, (SELECT SUM(price) FROM orders WHERE qty = 3) AS s FROM customers WHERE id = 1
SELECT id, (SELECT MAX(level) FROM MAIN.vip) AS top FROM customers WHERE id = 4
SELECT id FROM customers WHERE balance > (SELECT balance FROM customers WHERE id = 10) ORDER BY id
SELECT * FROM customers WHERE id = (SELECT cid FROM MAIN.vip WHERE tag = 'silver')
SELECT * FROM customers WHERE id = (SELECT cid FROM MAIN.vip WHERE tag = 'none')
SELECT order_id, qty FROM orders WHERE (customer_id, product_id) IN (SELECT id, 3 FROM customers WHERE city = 'Oslo')
SELECT c.id, o.order_id FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id IN (SELECT cid FROM MAIN.vip) ORDER BY o.order_id
SELECT customer_id, COUNT(*) FROM orders WHERE customer_id IN (SELECT cid FROM MAIN.vip) GROUP BY customer_id ORDER BY customer_id
error: SELECT * FROM customers WHERE id = (SELECT cid FROM MAIN.vip)
error: SELECT id, (SELECT id, name FROM customers WHERE id = 1) FROM customers WHERE id = 2
# --- joins whose rows do not live together: nested loop at the proxy, the right side asked per
# batch of left rows for their keys
SELECT c.name, o.order_id FROM customers c JOIN orders o ON o.order_id = c.id
SELECT c.id, o.order_id, o.qty FROM customers c JOIN orders o ON o.product_id = c.id
SELECT c.id, o.order_id FROM customers c LEFT JOIN orders o ON o.product_id = c.id WHERE c.id < 25
SELECT c.id, o.order_id FROM customers c LEFT JOIN orders o ON o.product_id = c.id AND o.qty > 4 WHERE c.id BETWEEN 1 AND 30
SELECT c.name, o.order_id FROM customers c JOIN orders o ON o.product_id = c.id ORDER BY o.order_id DESC LIMIT 7
SELECT c.name, o.order_id FROM customers c JOIN orders o ON o.product_id = c.id WHERE o.qty = 2 ORDER BY c.name, o.order_id
SELECT c.name AS who, o.order_id AS oid FROM customers c JOIN orders o ON o.order_id = c.id ORDER BY oid LIMIT 4
SELECT c.name, o.order_id FROM customers c JOIN orders o ON o.order_id = c.id ORDER BY 2 DESC LIMIT 3, 4
SELECT c.name, v.level FROM customers c JOIN MAIN.vip v ON v.cid = c.id
SELECT v.tag, c.name FROM MAIN.vip v JOIN customers c ON c.id = v.cid
SELECT v.tag, c.name FROM MAIN.vip v LEFT JOIN customers c ON c.id = v.cid
SELECT v.cid, o.order_id FROM MAIN.vip v JOIN orders o ON o.customer_id = v.cid WHERE v.level = 1 ORDER BY o.order_id
SELECT v.tag, c.id FROM MAIN.vip v JOIN customers c ON c.name = v.tag
SELECT p.name, o.order_id FROM products p LEFT JOIN orders o ON o.product_id = p.id AND o.qty = 6 WHERE p.id < 5
SELECT c.id, v.level FROM customers c, MAIN.vip v WHERE v.cid = c.id AND v.level > 1
SELECT c.id, o.order_id FROM customers c JOIN orders o ON o.product_id = c.id AND o.qty = c.score
SELECT c.id, o.order_id FROM customers c JOIN orders o ON o.product_id = c.id + 1 WHERE c.id < 5
SELECT c.id, o.order_id FROM customers c LEFT JOIN orders o ON o.qty = c.score AND o.customer_id = 3 WHERE c.id < 12
SELECT c.id, o.order_id FROM customers c JOIN orders o ON o.product_id = c.id WHERE c.id > 100000
SELECT c.id, o.order_id FROM customers c LEFT JOIN orders o ON o.product_id = c.id WHERE c.id > 100000
SELECT o.order_id, c.city, UPPER(c.name) FROM orders o JOIN customers c ON c.score = o.qty WHERE o.customer_id = 9 AND c.id < 40
SELECT o.order_id, 'x', c.balance * 2 FROM orders o JOIN customers c ON c.id = o.product_id WHERE o.price > 45 ORDER BY o.order_id
SELECT COUNT(*) FROM customers c JOIN orders o ON o.product_id = c.id
SELECT * FROM customers c JOIN orders o ON o.order_id = c.id
SELECT * FROM MAIN.vip v LEFT JOIN customers c ON c.id = v.cid
SELECT o.*, c.name FROM orders o JOIN customers c ON c.id = o.product_id WHERE o.qty = 3
SELECT c.id, v.* FROM customers c JOIN MAIN.vip v ON v.cid = c.id WHERE v.level = 2
SELECT * FROM customers c JOIN orders o ON o.customer_id = c.id JOIN products p ON p.id = o.qty WHERE c.id < 10
SELECT c.name, o.order_id, v.level FROM customers c JOIN orders o ON o.customer_id = c.id JOIN MAIN.vip v ON v.cid = o.product_id
SELECT c.name, o.order_id, p.name FROM customers c, orders o, products p WHERE o.order_id = c.id AND p.id = o.product_id AND c.id < 50
SELECT c.id, o.order_id, p.name FROM customers c JOIN orders o ON o.order_id = c.id LEFT JOIN products p ON p.id = o.qty + 15 ORDER BY c.id LIMIT 12
SELECT p.name, COUNT(*) FROM orders o JOIN customers c ON c.id = o.customer_id JOIN products p ON p.price = c.score GROUP BY p.name
SELECT COUNT(*), SUM(o.qty), MIN(o.price), MAX(c.name), AVG(o.price) FROM customers c JOIN orders o ON o.order_id = c.id
SELECT c.city, COUNT(*), SUM(o.qty) FROM customers c JOIN orders o ON o.product_id = c.id GROUP BY c.city
SELECT c.id, COUNT(o.order_id) AS n FROM customers c LEFT JOIN orders o ON o.product_id = c.id WHERE c.id < 25 GROUP BY c.id ORDER BY n DESC, c.id
SELECT o.product_id, MIN(c.name), MAX(c.balance), AVG(c.score) FROM orders o JOIN customers c ON c.id = o.customer_id + 1 GROUP BY o.product_id ORDER BY o.product_id LIMIT 6
SELECT v.level, COUNT(*), SUM(o.price) FROM MAIN.vip v JOIN orders o ON o.customer_id = v.cid GROUP BY v.level
SELECT v.tag, COUNT(c.id) FROM MAIN.vip v LEFT JOIN customers c ON c.name = v.tag GROUP BY v.tag
SELECT COUNT(*), MAX(o.order_id) FROM customers c JOIN orders o ON o.product_id = c.id WHERE c.id > 100000
SELECT c.city AS town, COUNT(*) AS n FROM customers c JOIN orders o ON o.product_id = c.id GROUP BY c.city ORDER BY n, town LIMIT 3
# --- UNION and UNION ALL over shards
SELECT id FROM customers UNION SELECT customer_id FROM orders
SELECT id FROM customers UNION ALL SELECT customer_id FROM orders
SELECT customer_id FROM orders UNION SELECT customer_id FROM orders
SELECT city FROM customers UNION SELECT city FROM customers
SELECT city FROM customers WHERE id < 20 UNION SELECT city FROM customers WHERE id > 150
SELECT name, city FROM customers WHERE id = 3 UNION ALL SELECT name, city FROM customers WHERE id = 4
SELECT name FROM customers WHERE id = 3 UNION SELECT name FROM customers WHERE id = 3
SELECT id FROM products UNION SELECT customer_id FROM orders WHERE qty = 1
SELECT id, name FROM customers WHERE score > 30 UNION ALL SELECT order_id, 'order' FROM orders WHERE qty = 6 ORDER BY id, name LIMIT 12
SELECT id, name FROM customers WHERE score > 30 UNION SELECT order_id, 'order' FROM orders WHERE qty = 6 ORDER BY id DESC, name LIMIT 5, 5
(SELECT id FROM customers WHERE city = 'Oslo') UNION (SELECT customer_id FROM orders WHERE product_id = 2) ORDER BY id
SELECT c.id FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.qty = 2 UNION SELECT id FROM misc
SELECT price FROM orders WHERE customer_id < 0 UNION SELECT balance FROM customers WHERE id < 0
SELECT name FROM customers WHERE id IN (6, 7, 8) UNION SELECT name FROM customers WHERE id IN (8, 9, 10) ORDER BY name
# branches with their own ORDER BY ... LIMIT: each merged on its own, typed as the UNION
(SELECT id, name FROM customers ORDER BY balance DESC, id LIMIT 3) UNION ALL (SELECT order_id, 'o' FROM orders ORDER BY price, order_id LIMIT 4)
(SELECT name, id FROM customers ORDER BY name, id LIMIT 5) UNION ALL (SELECT name, id FROM customers WHERE id > 100 ORDER BY 1 DESC, id LIMIT 2, 3) ORDER BY name, id LIMIT 6
(SELECT id AS x FROM customers WHERE city IS NULL ORDER BY x DESC LIMIT 2) UNION ALL SELECT customer_id FROM orders WHERE qty = 7 ORDER BY x
(SELECT price FROM orders ORDER BY qty DESC, order_id LIMIT 2) UNION ALL (SELECT id FROM customers ORDER BY id LIMIT 2) UNION ALL (SELECT score FROM customers WHERE id < 0 ORDER BY score, id LIMIT 1)
(SELECT id FROM customers WHERE id > 1000000 ORDER BY id LIMIT 2) UNION ALL (SELECT customer_id FROM orders ORDER BY order_id LIMIT 1)
(SELECT id FROM customers ORDER BY id LIMIT 3) UNION (SELECT customer_id FROM orders ORDER BY order_id LIMIT 4)
(SELECT city FROM customers ORDER BY id DESC LIMIT 6) UNION (SELECT city FROM customers WHERE id < 50) UNION SELECT 'Lyon' ORDER BY city LIMIT 4
(SELECT qty, price FROM orders ORDER BY price DESC, order_id LIMIT 5) UNION (SELECT qty, price FROM orders ORDER BY qty, order_id LIMIT 5) ORDER BY 2, 1
# A UNION (distinct) last removes the duplicates of every branch before it.
SELECT id FROM customers WHERE id < 10 UNION ALL SELECT customer_id FROM orders WHERE customer_id < 10 UNION SELECT id FROM products
(SELECT city FROM customers UNION ALL SELECT city FROM customers WHERE id < 50) UNION SELECT city FROM customers WHERE id > 100 ORDER BY city
# UNION ALL with branches that read only reference tables: their rows come from one shard.
SELECT id FROM customers UNION ALL SELECT id FROM products
SELECT id, name FROM products UNION ALL SELECT id, name FROM customers WHERE id < 5 ORDER BY id, name
SELECT id, name FROM products WHERE price > 10 UNION ALL SELECT id, name FROM customers WHERE id BETWEEN 1 AND 20 UNION ALL SELECT id, 'again' FROM products WHERE id < 3 ORDER BY id DESC, name LIMIT 9
SELECT id FROM customers WHERE id < 3 UNION ALL SELECT name FROM products WHERE id < 3
SELECT 'header', 0 UNION ALL SELECT name, id FROM customers WHERE score > 40
SELECT name FROM customers WHERE id = 7 UNION ALL SELECT name FROM products WHERE id = 1
# Derived tables joined with tables: co-located when the derived table keeps the vindex column
# (grouped by it), else a join across shards with the derived table's rows on the left.
SELECT c.name, t.n FROM customers c JOIN (SELECT customer_id, COUNT(*) AS n FROM orders GROUP BY customer_id) t ON t.customer_id = c.id
SELECT c.id, t.n, t.last FROM customers c JOIN (SELECT customer_id, COUNT(*) AS n, MAX(placed) AS last FROM orders GROUP BY customer_id) AS t ON t.customer_id = c.id WHERE t.n > 3 ORDER BY t.n DESC, c.id LIMIT 8
SELECT t.customer_id, t.q FROM (SELECT DISTINCT customer_id, qty AS q FROM orders) t WHERE t.q > 3
SELECT c.id, t.n FROM customers c JOIN (SELECT product_id, COUNT(*) AS n FROM orders GROUP BY product_id) t ON t.product_id = c.id
SELECT t.product_id, t.n, c.name FROM (SELECT product_id, COUNT(*) AS n FROM orders GROUP BY product_id) t JOIN customers c ON c.id = t.product_id
SELECT p.name, t.total FROM products p JOIN (SELECT product_id, SUM(qty) AS total FROM orders GROUP BY product_id) t ON t.product_id = p.id
SELECT t.product_id, c.score FROM (SELECT product_id, COUNT(*) AS n FROM orders GROUP BY product_id) t LEFT JOIN customers c ON c.id = t.product_id AND c.score > 0 ORDER BY t.product_id
SELECT t.product_id, c.id FROM (SELECT product_id FROM orders ORDER BY order_id LIMIT 30) t, customers c WHERE c.id = t.product_id AND c.score < 30
# Unqualified columns in joins across shards: qualified from the shards' column lists; an
# expression keeps its text as its column title; a name of both tables is ambiguous (1052).
SELECT name, o.order_id FROM customers c JOIN orders o ON o.product_id = c.id
SELECT name, order_id, qty FROM customers c JOIN orders o ON product_id = c.id WHERE qty > 3 ORDER BY order_id
SELECT city, COUNT(*) AS n FROM customers c JOIN orders o ON o.product_id = c.id GROUP BY city ORDER BY n, city
SELECT name, level FROM customers c JOIN MAIN.vip v ON cid = id
SELECT order_id, qty * score FROM customers c JOIN orders o ON o.product_id = c.id WHERE c.id < 30
SELECT UPPER(name), order_id FROM customers c JOIN orders o ON o.product_id = c.id WHERE order_id < 50
SELECT c.id, order_id FROM customers c LEFT JOIN orders o ON product_id = c.id AND qty > 4 WHERE c.id < 30
SELECT name AS who, placed FROM customers c JOIN orders o ON o.product_id = c.id ORDER BY placed DESC, order_id LIMIT 5
error: SELECT name FROM customers a JOIN customers b ON b.score = a.id
# CTEs over several shards, each named once: planned as the derived tables they stand for.
WITH big AS (SELECT * FROM orders WHERE price > 50) SELECT COUNT(*) FROM big
WITH c AS (SELECT id, name FROM customers WHERE score > 3) SELECT name, id FROM c ORDER BY name, id LIMIT 5
WITH t AS (SELECT customer_id, SUM(qty) AS q FROM orders GROUP BY customer_id) SELECT c.name, t.q FROM customers c JOIN t ON t.customer_id = c.id WHERE c.id < 20
WITH v AS (SELECT cid FROM MAIN.vip) SELECT id, name FROM customers WHERE id IN (SELECT cid FROM v)
WITH a AS (SELECT id, city FROM customers WHERE id < 50), b AS (SELECT customer_id, qty FROM orders) SELECT a.city, COUNT(*) FROM a JOIN b ON b.customer_id = a.id GROUP BY a.city ORDER BY a.city
refused: WITH c AS (SELECT id FROM customers WHERE score > 5) SELECT COUNT(*) FROM c x JOIN c y ON y.id = x.id  # a CTE named more than once
# A derived table `SELECT * FROM table`: `*` as the table's columns, for the outer query.
WITH big AS (SELECT * FROM orders WHERE price > 50) SELECT COUNT(*), SUM(price) FROM big
SELECT id, name FROM (SELECT * FROM customers WHERE id < 40) c WHERE score > 10 ORDER BY id
SELECT t.product_id, COUNT(*) FROM (SELECT * FROM orders WHERE qty > 3) t GROUP BY t.product_id ORDER BY t.product_id
# Window functions partitioned by the vindex column: each shard computes them whole.
SELECT order_id, customer_id, COUNT(*) OVER (PARTITION BY customer_id) AS n, MAX(qty) OVER (PARTITION BY customer_id, product_id) AS m FROM orders WHERE customer_id < 10
SELECT order_id, customer_id, ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY order_id) AS rn FROM orders WHERE customer_id < 10 ORDER BY order_id
SELECT customer_id, order_id, SUM(qty) OVER (PARTITION BY customer_id ORDER BY order_id) AS running FROM orders WHERE customer_id BETWEEN 5 AND 15 ORDER BY customer_id, order_id
SELECT order_id, RANK() OVER (PARTITION BY o.customer_id ORDER BY price DESC) AS r FROM orders o ORDER BY r, order_id LIMIT 10
SELECT id, name, COUNT(*) OVER (PARTITION BY id, city) AS n FROM customers WHERE id < 8
SELECT customer_id, AVG(price) OVER (PARTITION BY customer_id) AS avg_price FROM orders WHERE qty > 4 ORDER BY avg_price DESC, order_id LIMIT 5
SELECT c.name, o.order_id, ROW_NUMBER() OVER (PARTITION BY c.id ORDER BY o.price DESC, o.order_id) AS rn FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id < 12 ORDER BY o.order_id
SELECT o.order_id, SUM(o.qty) OVER (PARTITION BY o.customer_id) AS total, p.name FROM orders o JOIN products p ON p.id = o.product_id WHERE o.qty > 5 ORDER BY o.order_id LIMIT 8
refused: SELECT c.id, o.order_id, COUNT(*) OVER (PARTITION BY o.customer_id) FROM customers c LEFT JOIN orders o ON o.customer_id = c.id AND o.qty > 8  # window function COUNT in a join
refused: SELECT order_id, ROW_NUMBER() OVER (ORDER BY order_id) FROM orders  # window function ROW_NUMBER
refused: SELECT order_id, ROW_NUMBER() OVER (PARTITION BY product_id ORDER BY order_id) FROM orders  # window function ROW_NUMBER
refused: SELECT customer_id, COUNT(*), ROW_NUMBER() OVER (PARTITION BY customer_id) FROM orders GROUP BY customer_id  # GROUP BY with window functions
# SELECT DISTINCT over joins across shards and derived tables: grouped at the proxy.
SELECT DISTINCT c.city FROM customers c JOIN orders o ON o.product_id = c.id
SELECT DISTINCT o.qty, c.score FROM customers c JOIN orders o ON o.product_id = c.id WHERE c.id < 10 ORDER BY o.qty, c.score
SELECT DISTINCT v.level FROM MAIN.vip v JOIN customers c ON c.id = v.cid
SELECT DISTINCT c.score, c.city FROM customers c LEFT JOIN orders o ON o.product_id = c.id WHERE o.order_id IS NULL
SELECT DISTINCT t.n FROM (SELECT customer_id, COUNT(*) AS n FROM orders GROUP BY customer_id) t ORDER BY t.n
SELECT DISTINCT t.city AS town FROM (SELECT city FROM customers ORDER BY id LIMIT 50) t ORDER BY town
refused: SELECT DISTINCT c.city FROM customers c JOIN orders o ON o.product_id = c.id ORDER BY o.qty  # DISTINCT
# Expressions over merged aggregates, computed at the proxy.
SELECT COUNT(*) + 1 FROM customers
SELECT city, COUNT(*) * 2 AS twice, SUM(balance) / COUNT(*), MAX(score) - MIN(score) FROM customers GROUP BY city ORDER BY twice DESC, city
SELECT customer_id, AVG(qty), COUNT(*) > 3, -SUM(price) FROM orders GROUP BY customer_id HAVING COUNT(*) > 2
# A quotient (AVG, /) goes on into arithmetic with the digits the server keeps (9 per word),
# and is compared and shown rounded to its type's decimals.
SELECT customer_id, AVG(qty) * 2 FROM orders GROUP BY customer_id ORDER BY customer_id
SELECT AVG(price) * 3, SUM(qty) / COUNT(*) * 1000000000, AVG(qty) + AVG(price), AVG(qty) / 7 * 7, -AVG(qty) * 3 FROM orders
SELECT ROUND(AVG(qty) * 2, 9), ROUND(AVG(qty), 9), ROUND(SUM(qty) / 3, 12), ROUND(AVG(price) / 3, 20) FROM orders
SELECT customer_id, AVG(qty) FROM orders GROUP BY customer_id HAVING AVG(qty) * 3 > 11 ORDER BY customer_id
SELECT city, AVG(score) FROM customers GROUP BY city HAVING AVG(score) / 3 * 3 = AVG(score) ORDER BY city
SELECT order_id FROM orders WHERE qty * 2 > (SELECT AVG(qty) * 3 FROM orders) ORDER BY order_id
SELECT (SELECT AVG(qty) * 2 FROM orders) AS a, (SELECT SUM(price) / 7 FROM orders) FROM customers WHERE id = 3
refused: SELECT order_id FROM orders WHERE qty > (SELECT AVG(qty) FROM orders) * 2  # the quotient (AVG or /) of a subquery that runs first
# A quotient a shard computes reaches the proxy with its shown digits only: adding those up, or
# arithmetic on them, would differ from MariaDB's (DISTINCT aggregates, MIN/MAX compared, and
# materialized derived tables use the shown value, as MariaDB does).
refused: SELECT SUM(qty / 7), COUNT(*) FROM orders  # SUM of a quotient (/) across shards
refused: SELECT customer_id, AVG(price / qty) FROM orders GROUP BY customer_id  # AVG of a quotient (/) across shards
refused: SELECT MAX(qty / 7) * 7 FROM orders  # over MAX(qty / 7)
refused: SELECT COALESCE(AVG(qty), 0) * 2 FROM orders  # over AVG(qty)
SELECT customer_id, COALESCE(AVG(qty), 0), CONCAT('avg ', AVG(price)), IFNULL(MAX(qty / 7), -1) FROM orders GROUP BY customer_id ORDER BY customer_id LIMIT 6
SELECT city, CASE WHEN AVG(score) IS NULL THEN 'none' ELSE CONCAT(AVG(score), '') END FROM customers GROUP BY city ORDER BY city
refused: SELECT city, CONCAT(ROUND(AVG(score), 1), '') FROM customers GROUP BY city  # over AVG(score)
refused: SELECT t.order_id, t.q * 1000000000 FROM (SELECT order_id, qty / 7 AS q FROM orders) t ORDER BY t.order_id LIMIT 5  # arithmetic or an aggregate over t.q, a quotient (/) in a derived table
refused: SELECT SUM(t.q), COUNT(*) FROM (SELECT qty / 7 AS q FROM orders) t  # arithmetic or an aggregate over t.q
SELECT SUM(DISTINCT qty / 7), COUNT(DISTINCT qty / 7), MIN(qty / 7), MAX(price / 3) FROM orders
SELECT customer_id, MAX(qty / 7) FROM orders GROUP BY customer_id HAVING MAX(qty / 7) > 1 ORDER BY customer_id LIMIT 6
SELECT t.order_id, t.q FROM (SELECT order_id, qty / 7 AS q FROM orders) t WHERE t.q > 1 ORDER BY t.q, t.order_id LIMIT 5
SELECT t.customer_id, t.a * 3 FROM (SELECT customer_id, AVG(qty) AS a FROM orders GROUP BY customer_id) t ORDER BY t.customer_id LIMIT 5
SELECT t.q * 1000000000 FROM (SELECT qty / 7 AS q FROM orders ORDER BY order_id LIMIT 5) t
SELECT product_id, SUM(qty) - COUNT(*) AS d FROM orders GROUP BY product_id ORDER BY d, product_id LIMIT 5
# --- refused (each names what is missing)
SELECT * FROM products p LEFT JOIN orders o ON o.product_id = p.id
refused: SELECT * FROM customers c JOIN orders o ON o.order_id = c.id ORDER BY o.order_id  # ORDER BY with SELECT *
SELECT COUNT(DISTINCT o.qty) FROM customers c JOIN orders o ON o.product_id = c.id
refused: SELECT COUNT(DISTINCT o.qty), COUNT(DISTINCT c.city) FROM customers c JOIN orders o ON o.product_id = c.id  # DISTINCT aggregates of different expressions
SELECT c.city, COUNT(*) FROM customers c JOIN orders o ON o.product_id = c.id GROUP BY c.city HAVING COUNT(*) > 60
SELECT c.city, COUNT(*) AS n, AVG(o.qty) FROM customers c JOIN orders o ON o.product_id = c.id GROUP BY c.city HAVING n >= 90 AND AVG(o.qty) > 3.4 ORDER BY c.city
SELECT o.product_id, SUM(o.qty) FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY o.product_id HAVING MAX(c.balance) > 900 AND o.product_id < 10
SELECT COUNT(*) FROM customers c JOIN orders o ON o.product_id = c.id HAVING COUNT(*) > 1000
refused: SELECT c.id FROM customers c JOIN orders o ON o.product_id = c.id HAVING c.id > 3  # HAVING without GROUP BY or aggregates
SELECT c.id, o.order_id FROM customers c JOIN orders o ON o.product_id = c.id WHERE o.qty > c.score
SELECT c.id FROM customers c LEFT JOIN orders o ON o.product_id = c.id WHERE o.order_id IS NULL
SELECT c.id, o.order_id FROM customers c LEFT JOIN orders o ON o.product_id = c.id WHERE c.id < 8 AND (o.qty > 4 OR o.qty IS NULL) ORDER BY c.id, o.order_id
SELECT c.id, o.order_id FROM customers c JOIN orders o ON o.product_id = c.id WHERE o.price * 10 < c.balance AND c.id < 6 ORDER BY o.order_id LIMIT 10
SELECT c.city, COUNT(*) FROM customers c LEFT JOIN orders o ON o.product_id = c.id WHERE o.order_id IS NULL GROUP BY c.city
SELECT v.tag, c.id FROM MAIN.vip v LEFT JOIN customers c ON c.id = v.cid WHERE c.id IS NULL
# Select items over both tables: computed at the proxy, typed as MariaDB types them.
SELECT c.id, o.order_id, o.qty * c.score FROM customers c JOIN orders o ON o.product_id = c.id
SELECT o.order_id, o.price * c.balance AS total, o.qty + c.id, o.qty > c.score, c.balance / o.qty, -(o.qty - c.score) FROM customers c JOIN orders o ON o.product_id = c.id WHERE o.order_id < 100 ORDER BY o.order_id
SELECT c.id, v.level * c.score - c.id, c.balance + v.level, v.level / c.score, c.id IN (c.score, v.level) FROM customers c JOIN MAIN.vip v ON v.cid = c.id
SELECT c.id, c.score + o.qty, o.price - o.price * c.score FROM customers c LEFT JOIN orders o ON o.product_id = c.id AND o.qty > 3 WHERE c.id BETWEEN 15 AND 25
SELECT c.id, o.qty * c.score AS x FROM customers c JOIN orders o ON o.product_id = c.id WHERE o.qty > c.score ORDER BY c.id, o.order_id LIMIT 7
refused: SELECT o.order_id, o.qty * c.score AS x FROM customers c JOIN orders o ON o.product_id = c.id ORDER BY x  # ORDER BY a select item over both tables
refused: SELECT c.name, CONCAT(c.name, o.qty) FROM customers c JOIN orders o ON o.product_id = c.id  # CONCAT(c.name, o.qty)
SELECT c.id FROM customers c LEFT JOIN orders o ON o.product_id = c.id AND o.qty > c.score
SELECT c.id, o.order_id FROM customers c LEFT JOIN orders o ON o.product_id = c.id AND c.score > 10 WHERE c.id < 30
SELECT c.id, o.order_id, o.qty FROM customers c LEFT JOIN orders o ON o.product_id = c.id AND (o.qty > c.score OR c.score IS NULL) ORDER BY c.id, o.order_id LIMIT 40
SELECT c.city, COUNT(o.order_id), COUNT(*) FROM customers c LEFT JOIN orders o ON o.product_id = c.id AND o.qty * 2 > c.score AND c.id % 2 = 0 GROUP BY c.city
SELECT v.cid, c.name FROM MAIN.vip v LEFT JOIN customers c ON c.id = v.cid AND v.level > 1 AND c.score < v.level * 10
refused: SELECT * FROM customers c JOIN orders o ON o.product_id = c.id WHERE o.qty > c.score  # SELECT * with conditions over both tables
refused: SELECT id FROM customers UNION SELECT id FROM customers UNION ALL SELECT customer_id FROM orders  # UNION ALL after a UNION (distinct)
refused: SELECT COUNT(*) FROM customers UNION ALL SELECT COUNT(*) FROM orders  # aggregate function COUNT inside a UNION
SELECT id + 1 FROM customers UNION SELECT customer_id FROM orders
SELECT id + 1 FROM customers UNION SELECT customer_id FROM orders ORDER BY 1 LIMIT 5
SELECT 1, 'a' FROM customers UNION SELECT 2, 'b' FROM orders
SELECT 'x', city FROM customers UNION SELECT 'y', city FROM customers ORDER BY 1, 2
error: SELECT id FROM customers UNION SELECT id, name FROM customers
SELECT * FROM customers WHERE id NOT IN (SELECT customer_id FROM orders)
SELECT c.name FROM customers c WHERE c.id = 5 AND c.score IN (SELECT qty FROM orders WHERE customer_id = 5)
SELECT * FROM customers WHERE score IN (SELECT qty FROM orders)
SELECT * FROM (SELECT customer_id, COUNT(*) AS n FROM orders GROUP BY customer_id) t
SELECT t.customer_id, t.n FROM (SELECT customer_id, COUNT(*) AS n FROM orders GROUP BY customer_id) AS t WHERE t.n > 3 ORDER BY t.n DESC, t.customer_id LIMIT 5
SELECT * FROM (SELECT name, id FROM customers WHERE id > 150) t ORDER BY name, id
SELECT x.id AS ident FROM (SELECT id, balance FROM customers WHERE score > 40) x WHERE x.balance > 500
SELECT u.id FROM (SELECT id FROM customers UNION SELECT customer_id FROM orders) u WHERE u.id < 0
SELECT * FROM (SELECT c.id, o.order_id FROM customers c JOIN orders o ON o.product_id = c.id) j WHERE j.order_id < 40
SELECT t.city, t.total FROM (SELECT city, SUM(balance) AS total FROM customers GROUP BY city) t ORDER BY t.city LIMIT 3
SELECT COUNT(*) FROM (SELECT customer_id FROM orders) t
SELECT t.customer_id, CASE WHEN t.n > 3 THEN 'many' ELSE 'few' END AS size, CONCAT(t.customer_id, '/', t.n) FROM (SELECT customer_id, COUNT(*) AS n FROM orders GROUP BY customer_id) t ORDER BY t.customer_id
SELECT UPPER(t.name), LENGTH(t.name) + t.id AS x, COALESCE(t.city, '?') FROM (SELECT id, name, city FROM customers WHERE id > 150) t ORDER BY t.id
SELECT t.id, ROUND(t.balance * 1.1, 1), DATE_FORMAT(t.created, '%d/%m') FROM (SELECT id, balance, created FROM customers ORDER BY balance DESC, id LIMIT 7) t WHERE t.balance > 0 ORDER BY 1
SELECT IFNULL(t.m, 0) FROM (SELECT MAX(v) AS m FROM misc) t
# WHERE conditions the proxy cannot evaluate: a shard evaluates them over the rows' values.
SELECT t.id, t.name FROM (SELECT id, name FROM customers WHERE id > 100) t WHERE UPPER(t.name) = 'ANA' ORDER BY t.id
SELECT t.city, t.n FROM (SELECT city, COUNT(*) AS n FROM customers GROUP BY city) t WHERE LENGTH(t.city) > 4 OR t.city IS NULL ORDER BY t.n DESC, t.city LIMIT 3
SELECT t.city, COUNT(*) FROM (SELECT city, name FROM customers) t WHERE CASE WHEN t.name LIKE 'A%' THEN 1 ELSE 0 END = 1 GROUP BY t.city ORDER BY t.city
SELECT * FROM (SELECT id, score FROM customers WHERE id < 50) t WHERE COALESCE(t.score, 0) % 2 = 1
SELECT CONCAT(t.name, '!'), t.id FROM (SELECT id, name FROM customers) t WHERE LOWER(t.name) LIKE 'z%' ORDER BY t.id
SELECT t.name FROM (SELECT id, name FROM customers ORDER BY id LIMIT 30) t WHERE t.name IN ('ana', 'Zoe') ORDER BY t.name, t.id
SELECT COUNT(*) FROM (SELECT DISTINCT customer_id FROM orders) AS subquery
SELECT COUNT(*), SUM(t.n), MIN(t.n), MAX(t.n), AVG(t.n) FROM (SELECT customer_id, COUNT(*) AS n FROM orders GROUP BY customer_id) t
SELECT t.city, COUNT(*) AS k, MIN(t.balance), MAX(t.balance) FROM (SELECT city, name, balance FROM customers WHERE id > 20) t GROUP BY t.city ORDER BY k DESC, t.city
SELECT t.n, COUNT(*) FROM (SELECT customer_id, COUNT(*) AS n FROM orders GROUP BY customer_id) t GROUP BY t.n HAVING COUNT(*) > 2 ORDER BY t.n LIMIT 4
SELECT COUNT(t.score), COUNT(*) FROM (SELECT score FROM customers) t
SELECT COUNT(DISTINCT t.city), COUNT(*) FROM (SELECT city FROM customers WHERE id > 0) t
SELECT t.city, COUNT(DISTINCT t.score), SUM(DISTINCT t.score) FROM (SELECT city, score FROM customers) t GROUP BY t.city
SELECT c.city, COUNT(DISTINCT o.product_id), COUNT(*) FROM customers c JOIN orders o ON o.product_id = c.id GROUP BY c.city
SELECT COUNT(DISTINCT v.level), SUM(DISTINCT v.level), COUNT(*) FROM MAIN.vip v JOIN customers c ON c.id = v.cid
refused: SELECT COUNT(DISTINCT t.city), COUNT(DISTINCT t.name) FROM (SELECT city, name FROM customers) t  # DISTINCT aggregates of different columns
# Text and dates compared with a string over a derived table: a shard compares them, under the
# column's own collation (the rows do not name it).
SELECT t.city, t.n FROM (SELECT city, COUNT(*) AS n FROM customers WHERE city <> '서울' GROUP BY city) t WHERE t.city >= 'oslo'
SELECT t.city FROM (SELECT city, COUNT(*) AS n FROM customers WHERE city <> '서울' GROUP BY city) t WHERE t.city = 'PORTO' OR t.city < 'd'
SELECT city, COUNT(*) FROM customers WHERE city <> '서울' GROUP BY city HAVING MAX(city) < 'P'
SELECT c.id, c.name, v.tag FROM customers c JOIN MAIN.vip v ON v.cid = c.id WHERE v.cid > 0 AND v.tag > c.name
SELECT * FROM (SELECT id, created FROM customers ORDER BY id LIMIT 20) t WHERE t.created >= '2024-06-01'
SELECT t.id FROM (SELECT id, created FROM customers ORDER BY id LIMIT 40) t WHERE t.created > '2024-06-05 12:00:00' OR t.created = '2024-01-01'
SELECT c.id, o.order_id, o.placed FROM customers c JOIN orders o ON o.product_id = c.id WHERE o.placed < c.created
SELECT t.p, t.customer_id FROM (SELECT MIN(placed) AS p, customer_id FROM orders GROUP BY customer_id) t WHERE t.p BETWEEN '2024-02-01' AND '2024-03-01 00:00:00'
SELECT t.customer_id FROM (SELECT MIN(qty) AS q, customer_id FROM orders GROUP BY customer_id) t WHERE t.q NOT IN (1, 2, NULL) OR t.q IN (3)
SELECT * FROM (SELECT name FROM customers) t WHERE t.name = 'Ana'
SELECT t.city FROM (SELECT city, COUNT(*) AS n FROM customers GROUP BY city) t WHERE t.city < 'Rome'
refused: SELECT c.id, o.order_id FROM customers c JOIN orders o ON o.customer_id = c.id WHERE EXISTS (SELECT 1 FROM orders x WHERE x.qty = c.score)  # a subquery in a join across shards
# --- GROUP_CONCAT: the shards concatenate per group and ORDER BY value, the proxy joins their
# strings in the merged order (NULLs skipped, DISTINCT across shards, cut to group_concat_max_len)
SELECT customer_id, GROUP_CONCAT(order_id ORDER BY order_id) FROM orders GROUP BY customer_id ORDER BY customer_id
SELECT city, GROUP_CONCAT(id ORDER BY id DESC SEPARATOR ' | ') AS ids, COUNT(*), SUM(balance) FROM customers GROUP BY city ORDER BY city
SELECT GROUP_CONCAT(DISTINCT product_id ORDER BY product_id DESC) FROM orders
SELECT GROUP_CONCAT(DISTINCT qty), COUNT(*) FROM orders
SELECT GROUP_CONCAT(DISTINCT city ORDER BY city DESC SEPARATOR '/') FROM customers
SELECT product_id, GROUP_CONCAT(order_id, ':', qty ORDER BY order_id SEPARATOR '') FROM orders WHERE product_id < 4 GROUP BY product_id ORDER BY product_id
SELECT GROUP_CONCAT(name ORDER BY id) FROM customers WHERE id < 20
SELECT GROUP_CONCAT(note ORDER BY id), GROUP_CONCAT(score ORDER BY id SEPARATOR ';') FROM customers
SELECT GROUP_CONCAT(v ORDER BY id) FROM misc
SELECT id, GROUP_CONCAT(name) FROM customers GROUP BY id ORDER BY id LIMIT 10
SELECT customer_id, GROUP_CONCAT(price ORDER BY placed DESC, order_id) FROM orders WHERE customer_id BETWEEN 5 AND 25 GROUP BY customer_id HAVING COUNT(*) > 2 ORDER BY customer_id
SET SESSION group_concat_max_len = 30
SELECT product_id, GROUP_CONCAT(order_id ORDER BY order_id DESC) FROM orders GROUP BY product_id ORDER BY product_id
SELECT GROUP_CONCAT(name ORDER BY id SEPARATOR '') FROM customers WHERE id BETWEEN 5 AND 40
SET SESSION group_concat_max_len = DEFAULT
refused: SELECT GROUP_CONCAT(DISTINCT name ORDER BY id) FROM customers  # GROUP_CONCAT (DISTINCT ...) ordered by other than its arguments
refused: SELECT city, GROUP_CONCAT(id ORDER BY id) g FROM customers GROUP BY city ORDER BY g  # ORDER BY a GROUP_CONCAT
refused: SELECT city FROM customers GROUP BY city HAVING GROUP_CONCAT(id) = '12'  # GROUP_CONCAT() that is not selected on its own
refused: SELECT GROUP_CONCAT(id ORDER BY id), GROUP_CONCAT(name ORDER BY name) FROM customers  # GROUP_CONCATs with different orders
refused: SELECT city, GROUP_CONCAT(id ORDER BY id) FROM customers GROUP BY city WITH ROLLUP  # WITH ROLLUP with GROUP_CONCAT
refused: SELECT GROUP_CONCAT(id ORDER BY 1) FROM customers  # GROUP_CONCAT ordered by a position
SELECT city, COUNT(*) FROM customers GROUP BY city WITH ROLLUP
SELECT city, COUNT(*), SUM(balance), AVG(balance) FROM customers GROUP BY city WITH ROLLUP
SELECT customer_id, product_id, COUNT(*), SUM(qty), MAX(price), AVG(price) FROM orders WHERE customer_id < 6 GROUP BY customer_id, product_id WITH ROLLUP
SELECT product_id, COUNT(*) FROM orders GROUP BY product_id WITH ROLLUP HAVING COUNT(*) > 25
SELECT customer_id, COUNT(*) FROM orders WHERE qty > 1000 GROUP BY customer_id WITH ROLLUP
SELECT product_id, COUNT(*) + 1, BIT_OR(qty) FROM orders GROUP BY product_id WITH ROLLUP LIMIT 5
refused: SELECT city, UPPER(city), COUNT(*) FROM customers GROUP BY city WITH ROLLUP  # neither a GROUP BY column nor over aggregates
refused: SELECT city, COUNT(*) + 1 AS n FROM customers GROUP BY city HAVING n > 3  # an alias of an expression over aggregates in HAVING
refused: SELECT ROW_NUMBER() OVER (ORDER BY id) FROM customers  # window function ROW_NUMBER
refused: SELECT COUNT(DISTINCT city), COUNT(DISTINCT name) FROM customers  # DISTINCT aggregates over different expressions
SELECT AVG(DISTINCT qty) FROM orders
SELECT AVG(DISTINCT price) FROM orders WHERE qty > 100
refused: SELECT AVG(DISTINCT price), AVG(DISTINCT qty) FROM orders  # DISTINCT aggregates over different expressions
SELECT product_id, AVG(DISTINCT qty), COUNT(DISTINCT qty), SUM(price) FROM orders GROUP BY product_id ORDER BY product_id
SELECT city, AVG(DISTINCT score) FROM customers GROUP BY city ORDER BY city
SELECT MIN(DISTINCT qty), MAX(DISTINCT price), COUNT(DISTINCT customer_id) FROM orders
SELECT customer_id, MAX(DISTINCT qty), MIN(DISTINCT placed) FROM orders WHERE customer_id < 20 GROUP BY customer_id ORDER BY customer_id
# --- COUNT(DISTINCT x, y): tuples with a NULL count nothing; names compare by collation
SELECT COUNT(DISTINCT customer_id, product_id) FROM orders
SELECT COUNT(DISTINCT city, name), COUNT(*) FROM customers
SELECT city, COUNT(DISTINCT name, score) AS n, SUM(balance) FROM customers GROUP BY city ORDER BY city
SELECT product_id, COUNT(DISTINCT qty, price) FROM orders GROUP BY product_id ORDER BY product_id
SELECT COUNT(DISTINCT v, s) FROM misc
SELECT COUNT(DISTINCT city, score) FROM customers WHERE id > 100000
refused: SELECT city FROM customers GROUP BY city HAVING COUNT(DISTINCT name, score) > 3  # a DISTINCT aggregate in HAVING
refused: SELECT COUNT(DISTINCT city, name), COUNT(DISTINCT city) FROM customers  # DISTINCT aggregates over different expressions
# --- the variance family: merged from each shard's count, sum and variance (`approx:`
# doubles may differ in their last bits: a variance depends on the order of its rows)
approx: SELECT STD(qty), STDDEV(price), STDDEV_POP(qty), STDDEV_SAMP(price), VARIANCE(qty), VAR_POP(price), VAR_SAMP(qty) FROM orders
approx: SELECT STDDEV(balance), VAR_SAMP(balance), VAR_POP(score), STDDEV_SAMP(score) FROM customers
approx: SELECT city, STD(balance) AS s, VAR_SAMP(score), COUNT(*) FROM customers GROUP BY city ORDER BY city
approx: SELECT city, VARIANCE(score) v FROM customers GROUP BY city ORDER BY v DESC
approx: SELECT STD(v), VAR_SAMP(v) FROM misc
approx: SELECT customer_id, VAR_SAMP(qty), STDDEV_SAMP(price) FROM orders WHERE customer_id < 5 GROUP BY customer_id ORDER BY customer_id
approx: SELECT STDDEV(qty * 1e0), VAR_POP(price / 3) FROM orders
approx: SELECT city, STD(score) FROM customers GROUP BY city WITH ROLLUP
refused: SELECT ROUND(STD(qty), 2) FROM orders  # STD() that is not selected on its own
refused: SELECT city FROM customers GROUP BY city HAVING VAR_POP(score) > 10  # VAR_POP() that is not selected on its own
# --- writes: after each one every table must match. Unique keys are enforced per shard, so a
# duplicate must collide on the shard of its vindex value (orders 1 and 2 keep their customer).
INSERT INTO customers (id, name, city, balance, created) VALUES (1001, 'Zed', 'Rome', 10.00, '2024-06-01'), (1002, 'Yan', 'Oslo', 20.50, '2024-06-02'), (-1003, 'Xu', 'Lyon', 0, '2024-06-03')
SELECT * FROM customers WHERE id IN (1001, 1002, -1003)
error: INSERT INTO customers (id, name, city, balance, created) VALUES (1001, 'Dup', 'Rome', 1, '2024-01-01')
INSERT IGNORE INTO customers (id, name, city, balance, created) VALUES (1001, 'Dup', 'Rome', 1, '2024-01-01')
INSERT INTO customers (id, name, city, balance, created) VALUES (1002, 'Yan', 'Oslo', 1, '2024-06-02') ON DUPLICATE KEY UPDATE balance = balance + VALUES(balance)
SELECT id, balance FROM customers WHERE id = 1002
REPLACE INTO customers (id, name, city, balance, created) VALUES (1001, 'Zed2', 'Rome', 11.00, '2024-06-01')
INSERT IGNORE INTO customers (id, name, city, balance, created) VALUES (1001, 'Dup', 'Rome', 1, '2024-01-01'), (1005, 'New', 'Rome', 1, '2024-01-01'), (-1003, 'Dup2', 'Lyon', 0, '2024-01-01'), (1006, 'Newer', 'Cork', 2, '2024-01-02')
REPLACE INTO customers (id, name, city, balance, created) VALUES (1005, 'New2', 'Rome', 5, '2024-01-05'), (1007, 'Fresh', 'Oslo', 7, '2024-01-07'), (1006, 'Newer2', 'Cork', 6, '2024-01-06')
INSERT INTO orders (order_id, customer_id, product_id, qty, price, placed) VALUES (1, -3, 1, 1, 1.00, '2024-01-01 00:00:00'), (601, 8, 2, 2, 2.00, '2024-01-02 00:00:00'), (2, 4, 3, 3, 3.00, '2024-01-03 00:00:00') ON DUPLICATE KEY UPDATE qty = qty + 100
UPDATE customers SET score = 1 WHERE city = 'Rome'
UPDATE customers SET score = 1 WHERE city = 'Rome'
UPDATE orders SET qty = qty WHERE customer_id IN (1, 2, 3, 4)
SELECT name FROM customers WHERE id = 1001
INSERT INTO customers (id, name, city, balance, created, note) VALUES (1004, 'Quote''s', 'Back\\slash', 1, '2024-06-04', 'line\nbreak')
SELECT name, city, note FROM customers WHERE id = 1004
# Without a column list: every column in table order (the shards' own list).
INSERT INTO customers VALUES (1020, 'NoList', 'Rome', 3.50, '2024-06-05', NULL, 7), (-1021, 'NoList2', NULL, 0, '2024-06-06', 'n', NULL)
SELECT * FROM customers WHERE id IN (1020, -1021)
INSERT INTO orders VALUES (1022, 1020, 3, 2, 9.99, '2024-06-05 10:00:00')
INSERT INTO customers SET id = 1030, name = 'Set', city = NULL, balance = 2.5 * 2, created = '2024-06-07'
INSERT INTO orders SET order_id = 1031, customer_id = 1030, product_id = 4, qty = 1, price = 1.25, placed = '2024-06-07 08:00:00'
INSERT INTO customers SET id = 1030, name = 'Set again', balance = 1, created = '2024-06-08' ON DUPLICATE KEY UPDATE balance = balance + 1
SELECT * FROM customers WHERE id = 1030
SELECT * FROM orders WHERE order_id = 1031
INSERT INTO orders (order_id, customer_id, product_id, qty, price, placed) SELECT order_id + 5000, customer_id, product_id, qty, price, placed FROM orders WHERE qty > 8
SELECT order_id, customer_id, qty, price, placed FROM orders WHERE order_id > 5000 ORDER BY order_id
INSERT INTO customers SELECT id + 3000, name, city, balance, created, note, score FROM customers WHERE city = 'Rome'
SELECT * FROM customers WHERE id > 3000 ORDER BY id
INSERT INTO orders (order_id, customer_id, product_id, qty, price, placed) SELECT order_id, customer_id, product_id, qty, price, placed FROM orders WHERE order_id > 5000 ON DUPLICATE KEY UPDATE qty = 1
INSERT INTO customers (id, name, balance, created) SELECT customer_id, 'from order', price, '2024-01-01' FROM orders WHERE order_id BETWEEN 1 AND 40 ON DUPLICATE KEY UPDATE balance = customers.balance + VALUES(balance), note = 'bought'
SELECT id, name, balance, note FROM customers WHERE note = 'bought' ORDER BY id
refused: INSERT INTO customers (id, name, balance, created) SELECT customer_id, 'x', price, '2024-01-01' FROM orders WHERE order_id < 5 ON DUPLICATE KEY UPDATE balance = balance + 1  # ON DUPLICATE KEY UPDATE reading balance
REPLACE INTO orders (order_id, customer_id, product_id, qty, price, placed) SELECT order_id, customer_id, product_id, qty + 1, price, placed FROM orders WHERE order_id > 5000
INSERT IGNORE INTO customers (id, name, balance, created) SELECT id, 'dup', 0, '2024-01-01' FROM customers WHERE id < 3
INSERT INTO orders (order_id, customer_id, product_id, qty, price, placed) SELECT order_id + 9000, customer_id, product_id, qty, price, placed FROM orders WHERE qty > 1000
INSERT INTO orders (order_id, customer_id, product_id, qty, price, placed) SELECT o.order_id + 7000, c.id, o.product_id, o.qty, o.price, o.placed FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.order_id = 5
SELECT customer_id, COUNT(*), SUM(qty) FROM orders WHERE order_id > 5000 GROUP BY customer_id ORDER BY customer_id
INSERT INTO customers (id, name, balance, created) SELECT cid * 10 + 40000, CONCAT('vip ', level), level, '2024-01-01' FROM MAIN.vip WHERE level > 1
SELECT id, name, balance FROM customers WHERE id >= 40000 ORDER BY id
error: INSERT INTO customers VALUES (1023, 'Short', 'Rome')
error: INSERT INTO customers VALUES (1020, 'Dup', 'Rome', 1, '2024-01-01', NULL, 1)
UPDATE customers SET balance = balance + 1 WHERE id = 1001
UPDATE customers SET note = 'touched' WHERE city = 'Oslo'
SELECT id, note FROM customers WHERE city = 'Oslo' ORDER BY id
UPDATE customers SET balance = 0 WHERE id IN (1, 2, 3)
DELETE FROM orders WHERE customer_id = 20
DELETE FROM orders WHERE qty = 1 AND price < 5
DELETE FROM orders WHERE customer_id IN (SELECT id FROM customers WHERE city = 'Cork')
UPDATE orders SET qty = qty + 1 WHERE product_id IN (SELECT id FROM customers WHERE score > 8)
UPDATE customers SET score = (SELECT MAX(qty) FROM orders) WHERE id = 7
DELETE FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE qty = 9) AND city IS NULL
UPDATE orders SET price = price + 1 WHERE EXISTS (SELECT 1 FROM customers WHERE id = 12345)
DELETE FROM orders WHERE order_id IN (SELECT order_id FROM orders WHERE qty = 8)
UPDATE orders SET qty = 0 WHERE customer_id NOT IN (SELECT id FROM customers WHERE id > 20)
refused: DELETE FROM orders WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = orders.product_id)  # a subquery on a sharded table that depends on the written row
SELECT COUNT(*), SUM(price) FROM orders
SELECT customer_id, COUNT(*) FROM orders GROUP BY customer_id ORDER BY customer_id
UPDATE products SET price = price + 1 WHERE id = 3
SELECT * FROM products WHERE id = 3
refused: UPDATE customers SET id = 5000 WHERE id = 1001  # changing the primary vindex column id
DELETE FROM orders ORDER BY order_id LIMIT 1
UPDATE customers SET balance = 1 ORDER BY id LIMIT 2
UPDATE orders SET qty = qty + 10 WHERE price > 10 ORDER BY price DESC, order_id LIMIT 5
DELETE FROM customers WHERE city = 'Oslo' ORDER BY name, id LIMIT 3
UPDATE customers SET score = 0 ORDER BY created DESC, id LIMIT 4
DELETE FROM orders WHERE qty > 1000 ORDER BY order_id LIMIT 2
UPDATE orders SET qty = 1 WHERE customer_id IN (5, 6, 7, 8) ORDER BY placed, order_id LIMIT 2
DELETE FROM customers WHERE id = 1004
# multi-table UPDATE and DELETE: the join selects the target's keys, then the one-table write
UPDATE orders o JOIN customers c ON c.id = o.product_id SET o.qty = o.qty + 1 WHERE c.city = 'Oslo'
UPDATE orders o JOIN customers c ON c.id = o.customer_id SET o.price = o.price * 2, o.qty = 0 WHERE c.name = 'ana' AND o.qty > 3
UPDATE customers c JOIN orders o ON o.customer_id = c.id SET c.score = 99 WHERE o.qty > 8
UPDATE orders o JOIN customers c ON c.score = o.qty SET o.qty = o.qty WHERE c.id < 0
DELETE o FROM orders o JOIN customers c ON c.id = o.product_id WHERE c.city IS NULL AND o.qty = 1
DELETE FROM o USING orders AS o JOIN customers AS c ON c.id = o.product_id WHERE c.score < 5
DELETE c FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.product_id = 999
refused: UPDATE orders o JOIN customers c ON c.id = o.product_id SET o.qty = c.id WHERE c.id = 5  # another table's column
refused: DELETE o, c FROM orders o JOIN customers c ON c.id = o.product_id WHERE c.id = 3  # from several tables
refused: UPDATE orders o, customers c SET o.qty = 1 WHERE c.id = o.product_id AND c.id = 5  # UPDATE of several tables listed with commas (join them with JOIN)
# --- transactions and session settings
BEGIN
UPDATE customers SET balance = balance + 10 WHERE city = 'Lyon'
SELECT SUM(balance) FROM customers
ROLLBACK
SELECT SUM(balance) FROM customers
START TRANSACTION
DELETE FROM orders WHERE customer_id IN (30, 31, 32)
INSERT INTO customers (id, name, city, balance, created) VALUES (1010, 'Tx', 'Rome', 1, '2024-07-01'), (1011, 'Tx2', 'Cork', 2, '2024-07-02')
SAVEPOINT before_update
UPDATE customers SET score = 99 WHERE id IN (1010, 1011, 5, 6)
ROLLBACK TO SAVEPOINT before_update
COMMIT
SELECT id, score FROM customers WHERE id IN (1010, 1011, 5, 6) ORDER BY id
SET autocommit = 0
UPDATE orders SET qty = qty + 1 WHERE customer_id = 40
ROLLBACK
UPDATE orders SET qty = qty + 2 WHERE customer_id = 41
COMMIT
SET autocommit = 1
SELECT customer_id, SUM(qty) FROM orders WHERE customer_id IN (40, 41) GROUP BY customer_id ORDER BY customer_id
SET @threshold = 500, @city = 'Oslo'
SELECT COUNT(*) FROM customers WHERE balance > @threshold
SELECT id FROM customers WHERE city = @city ORDER BY id
SET time_zone = '+03:00'
SELECT @@time_zone
SELECT * FROM customers ORDER BY id FOR UPDATE
SELECT id, balance FROM customers WHERE id = 5 LOCK IN SHARE MODE
SELECT id FROM customers WHERE balance > 900 ORDER BY id LIMIT 3 LOCK IN SHARE MODE
SELECT * FROM customers ORDER BY id
SELECT city, COUNT(*), SUM(balance) FROM customers GROUP BY city ORDER BY city
# --- comments in every position, and executable comments of each kind: `/*! */` runs,
# `/*!NNNNN */` runs when the server's version is at least NNNNN (MariaDB skips 50700 to 99999,
# MySQL 5.7's and 8's), `/*M!NNNNNN */` runs on MariaDB only.
/* before */ SELECT * FROM customers WHERE id = 17
SELECT /* a */ name /* b */ FROM /* c */ customers /* d */ WHERE /* e */ id /* f */ = /* g */ 17 /* h */
SELECT name FROM customers WHERE id = 17 -- after
SELECT name FROM customers WHERE id = 17 # after
SELECT name, city FROM customers WHERE id IN (/* one */ 3, 4 /* two */) ORDER BY id
SELECT /*+ not a hint */ name FROM customers WHERE id = 18
SELECT name FROM customers /*!WHERE id = 19*/
SELECT name FROM customers /*!40001 WHERE id = 20 */
SELECT name FROM customers WHERE id = 21 /*!90000 OR id = 22 */
SELECT name FROM customers WHERE id = 21 /*!50700 OR id = 22 */
SELECT name FROM customers WHERE id = 21 /*M!100100 OR id = 22 */ ORDER BY id
SELECT name FROM customers WHERE id = 21 /*M!999999 OR id = 22 */
SELECT /*!32302 1+ */ 1
SELECT 1 /* x */ + /*!2*/ + 3
SELECT name FROM customers WHERE name = '/*!40100 x */' OR id = 23
SELECT name FROM customers WHERE name = 'a -- b' /*!OR id = 24*/
SELECT COUNT(*) /* count */ FROM orders /*!40100 WHERE qty > 2 */
SELECT customer_id, /*!40100 SUM(qty) AS total, */ COUNT(*) FROM orders GROUP BY customer_id ORDER BY customer_id
SELECT c.name, o.qty FROM customers c /* join */ JOIN orders o ON /*!o.customer_id = c.id*/ WHERE c.id = 24 ORDER BY o.order_id
SELECT c.name FROM customers c WHERE c.id IN (SELECT /*!40100 customer_id */ FROM orders WHERE qty = 3) ORDER BY c.id
SELECT id FROM customers WHERE id < -5 /*!40100 UNION SELECT customer_id FROM orders WHERE qty = 6 */ ORDER BY id
UPDATE /* u */ customers SET score = score /*!40100 + 1 */ WHERE id = 25
INSERT /*!INTO*/ misc (id, v, s) VALUES (1, 1, '/*!x*/'), (2, /*!40100 2 */ /*!90000 + 1 */, '*/')
UPDATE misc SET v = v /*M!100100 * 10 */ WHERE id /*!IN (1, 2)*/
SELECT * FROM misc ORDER BY id
DELETE FROM misc WHERE id = 1 /*!40100 AND v = 10 */
DELETE /*!40100 FROM misc */ WHERE id = 2
SELECT COUNT(*) FROM misc
# --- DUAL names no table
SELECT 1 FROM DUAL
SELECT 1 + 1 AS two, 'x' FROM dual WHERE 1 = 1
# --- SQL-level prepared statements
SET @cid = 17, @a = 7, @b = 8, @q = 2, @name = 'Ana'
PREPARE q1 FROM 'SELECT name, city FROM customers WHERE id = ?'
EXECUTE q1 USING @cid
PREPARE q2 FROM 'SELECT COUNT(*), SUM(qty) FROM orders WHERE customer_id IN (?, ?) AND qty > ?'
EXECUTE q2 USING @a, @b, @q
PREPARE q3 FROM 'SELECT id FROM customers WHERE name = ? ORDER BY id'
EXECUTE q3 USING @name
SET @sql = 'SELECT COUNT(*) FROM customers WHERE score > ?'
PREPARE q4 FROM @sql
EXECUTE q4 USING @q
error: EXECUTE q2 USING @a
DEALLOCATE PREPARE q1
error: EXECUTE q1 USING @cid
error: DEALLOCATE PREPARE q1
