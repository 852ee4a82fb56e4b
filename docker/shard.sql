-- Schema of each `commerce` shard (run by the MySQL image on first start).
CREATE TABLE customers (
  customer_id BIGINT PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  email VARCHAR(100) NOT NULL
);
CREATE TABLE orders (
  order_id BIGINT PRIMARY KEY,
  customer_id BIGINT NOT NULL,
  product_id BIGINT NOT NULL,
  quantity INT NOT NULL,
  amount DECIMAL(10, 2) NOT NULL,
  KEY (customer_id)
);
CREATE TABLE products (
  product_id BIGINT PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  price DECIMAL(10, 2) NOT NULL
);
INSERT INTO products VALUES (1, 'keyboard', 49.90), (2, 'mouse', 19.90), (3, 'monitor', 189.00);
