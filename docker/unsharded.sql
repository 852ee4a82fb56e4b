-- The unsharded keyspace `main`: the sequence that numbers orders.
CREATE TABLE order_seq (id INT PRIMARY KEY, next_id BIGINT, cache BIGINT);
INSERT INTO order_seq VALUES (0, 1, 100);
