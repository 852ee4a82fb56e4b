# The differential corpus: each statement runs against the proxy (keyspace `four`, 4 shards) and
# against one reference database holding the same rows; results must match, as multisets unless
# an ORDER BY fixes the order. `refused:` lines must get error 1235 from the proxy (the reference
# runs them in a rolled-back transaction to prove they are valid SQL); `error:` lines must fail
# the same way on both. `four.` names the proxy's keyspace; the reference reads it as its own.

# point selects and routing
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
# scatter without merging
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
# single-shard queries keep everything
SELECT * FROM orders WHERE customer_id = 7 ORDER BY order_id
SELECT * FROM orders WHERE customer_id = 7 ORDER BY order_id DESC LIMIT 2
SELECT COUNT(*), SUM(qty), MIN(price), MAX(price), AVG(price) FROM orders WHERE customer_id = 9
SELECT product_id, COUNT(*) FROM orders WHERE customer_id = 11 GROUP BY product_id ORDER BY product_id
SELECT DISTINCT product_id FROM orders WHERE customer_id = 12 ORDER BY product_id
SELECT customer_id, COUNT(*) FROM orders WHERE customer_id IN (1, 2) GROUP BY customer_id HAVING COUNT(*) > 0 ORDER BY customer_id
SELECT * FROM orders WHERE customer_id = 13 AND order_id > 0 ORDER BY price, order_id LIMIT 1, 2
# reference table and table-less selects
SELECT * FROM products
SELECT * FROM products ORDER BY price DESC, id
SELECT COUNT(*), SUM(price) FROM products
SELECT 1 + 1, 'x', NULL
SELECT CONCAT('a', 'b'), 7 DIV 2, 2.50 * 4
SELECT * FROM four.customers WHERE id = 5
# refused until merging lands
refused: SELECT COUNT(*) FROM customers
refused: SELECT * FROM customers ORDER BY id
refused: SELECT * FROM customers LIMIT 5
refused: SELECT DISTINCT city FROM customers
refused: SELECT city, COUNT(*) FROM customers GROUP BY city
refused: SELECT SUM(balance) FROM customers WHERE id IN (1, 200)
refused: SELECT c.name, o.order_id FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = 5
refused: SELECT * FROM products p LEFT JOIN orders o ON o.product_id = p.id
refused: SELECT id FROM customers UNION SELECT customer_id FROM orders
refused: SELECT * FROM customers WHERE id IN (SELECT customer_id FROM orders)
refused: SELECT customer_id, COUNT(*) FROM orders WHERE customer_id IN (3, 4) GROUP BY customer_id
# writes
INSERT INTO customers (id, name, city, balance, created) VALUES (1001, 'Zed', 'Rome', 10.00, '2024-06-01'), (1002, 'Yan', 'Oslo', 20.50, '2024-06-02'), (-1003, 'Xu', 'Lyon', 0, '2024-06-03')
SELECT * FROM customers WHERE id IN (1001, 1002, -1003)
error: INSERT INTO customers (id, name, city, balance, created) VALUES (1001, 'Dup', 'Rome', 1, '2024-01-01')
INSERT IGNORE INTO customers (id, name, city, balance, created) VALUES (1001, 'Dup', 'Rome', 1, '2024-01-01')
INSERT INTO customers (id, name, city, balance, created) VALUES (1002, 'Yan', 'Oslo', 1, '2024-06-02') ON DUPLICATE KEY UPDATE balance = balance + VALUES(balance)
SELECT id, balance FROM customers WHERE id = 1002
REPLACE INTO customers (id, name, city, balance, created) VALUES (1001, 'Zed2', 'Rome', 11.00, '2024-06-01')
SELECT name FROM customers WHERE id = 1001
INSERT INTO customers (id, name, city, balance, created, note) VALUES (1004, 'Quote''s', 'Back\\slash', 1, '2024-06-04', 'line\nbreak')
SELECT name, city, note FROM customers WHERE id = 1004
UPDATE customers SET balance = balance + 1 WHERE id = 1001
UPDATE customers SET note = 'touched' WHERE city = 'Oslo'
SELECT id, note FROM customers WHERE city = 'Oslo'
UPDATE customers SET balance = 0 WHERE id IN (1, 2, 3)
DELETE FROM orders WHERE customer_id = 20
DELETE FROM orders WHERE qty = 1 AND price < 5
SELECT * FROM orders
UPDATE products SET price = price + 1 WHERE id = 3
SELECT * FROM products WHERE id = 3
refused: UPDATE customers SET id = 5000 WHERE id = 1001
refused: DELETE FROM orders ORDER BY order_id LIMIT 1
refused: UPDATE customers SET balance = 1 LIMIT 2
DELETE FROM customers WHERE id = 1004
SELECT * FROM customers
