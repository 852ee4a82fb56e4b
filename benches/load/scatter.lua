-- A query shardgate must send to every shard: sbtest is sharded by id, and this looks rows up by
-- the secondary index on k. Same options as sysbench's oltp_* scripts.
sysbench.cmdline.options = {
   tables = {"Number of tables", 1},
   table_size = {"Number of rows per table", 10000},
}

function thread_init()
   drv = sysbench.sql.driver()
   con = drv:connect()
end

function thread_done()
   con:disconnect()
end

function event()
   con:query(string.format("SELECT id, c FROM sbtest%d WHERE k = %d",
      sysbench.rand.uniform(1, sysbench.opt.tables),
      sysbench.rand.default(1, sysbench.opt.table_size)))
end
