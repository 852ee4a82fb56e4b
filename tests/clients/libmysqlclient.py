"""MySQL's own C client library (libmysqlclient, as bundled in mysql-connector-python's C
extension) through shardgate:
- with each compression algorithm it offers, `zstd` and `zlib`. The library refuses to connect
  when the server does not support the one algorithm it is given, so a successful connection
  proves the algorithm was negotiated. Rows large enough to be compressed go both ways.
- caching_sha2_password full authentication, as user `hashed` whose password shardgate knows only
  as a hash: the password goes RSA-encrypted with the server's public key.
Run by tests/clients.rs as `python libmysqlclient.py HOST PORT`.
"""

import ctypes
import glob
import os
import sys

import mysql  # noqa: F401  (locates site-packages)

host, port = sys.argv[1].encode(), int(sys.argv[2])
site = os.path.dirname(os.path.dirname(mysql.__file__))
lib = ctypes.CDLL(glob.glob(os.path.join(site, "_mysql_connector*.so"))[0])
lib.mysql_init.restype = ctypes.c_void_p
lib.mysql_init.argtypes = [ctypes.c_void_p]
lib.mysql_options.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
lib.mysql_real_connect.restype = ctypes.c_void_p
lib.mysql_real_connect.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                   ctypes.c_char_p, ctypes.c_uint, ctypes.c_char_p, ctypes.c_ulong]
lib.mysql_error.restype = ctypes.c_char_p
lib.mysql_error.argtypes = [ctypes.c_void_p]
lib.mysql_query.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
lib.mysql_store_result.restype = ctypes.c_void_p
lib.mysql_store_result.argtypes = [ctypes.c_void_p]
lib.mysql_num_rows.restype = ctypes.c_ulonglong
lib.mysql_num_rows.argtypes = [ctypes.c_void_p]
lib.mysql_fetch_row.restype = ctypes.POINTER(ctypes.c_char_p)
lib.mysql_fetch_row.argtypes = [ctypes.c_void_p]
lib.mysql_free_result.argtypes = [ctypes.c_void_p]
lib.mysql_close.argtypes = [ctypes.c_void_p]

# enum mysql_option in mysql.h
MYSQL_OPT_GET_SERVER_PUBLIC_KEY = 36
MYSQL_OPT_COMPRESSION_ALGORITHMS = 41
MYSQL_OPT_ZSTD_COMPRESSION_LEVEL = 42


def connect(algorithm):
    m = lib.mysql_init(None)
    lib.mysql_options(m, MYSQL_OPT_COMPRESSION_ALGORITHMS, ctypes.c_char_p(algorithm.encode()))
    level = ctypes.c_uint(7)
    lib.mysql_options(m, MYSQL_OPT_ZSTD_COMPRESSION_LEVEL, ctypes.byref(level))
    if not lib.mysql_real_connect(m, host, b"app", b"secret", b"two", port, None, 0):
        raise SystemExit(f"{algorithm}: connect failed: {lib.mysql_error(m).decode()}")
    return m


def query(m, sql):
    if lib.mysql_query(m, sql.encode()) != 0:
        raise SystemExit(f"{sql}: {lib.mysql_error(m).decode()}")
    res = lib.mysql_store_result(m)
    if not res:
        return None
    rows = []
    n = lib.mysql_num_rows(res)
    for _ in range(n):
        row = lib.mysql_fetch_row(res)
        rows.append((row[0].decode(), row[1].decode()))
    lib.mysql_free_result(res)
    return rows


m = connect("zstd")
query(m, "DROP TABLE IF EXISTS zstd_people")
query(m, "CREATE TABLE zstd_people (id BIGINT PRIMARY KEY, name VARCHAR(200) NOT NULL)")
values = ", ".join(f"({i}, '{'zstd row ' * 15}{i}')" for i in range(1, 501))
query(m, f"INSERT INTO zstd_people (id, name) VALUES {values}")
lib.mysql_close(m)

for algorithm in ("zstd", "zlib"):
    m = connect(algorithm)
    rows = query(m, "SELECT id, name FROM zstd_people ORDER BY id")
    if len(rows) != 500 or rows[41] != ("42", "zstd row " * 15 + "42"):
        raise SystemExit(f"{algorithm}: wrong rows: {len(rows)} {rows[:2]}")
    one = query(m, "SELECT id, name FROM zstd_people WHERE id = 7")
    if one != [("7", "zstd row " * 15 + "7")]:
        raise SystemExit(f"{algorithm}: {one}")
    lib.mysql_close(m)
    print(f"ok libmysqlclient {algorithm}")


def connect_hashed(password):
    m = lib.mysql_init(None)
    fetch_key = ctypes.c_bool(True)
    lib.mysql_options(m, MYSQL_OPT_GET_SERVER_PUBLIC_KEY, ctypes.byref(fetch_key))
    if not lib.mysql_real_connect(m, host, b"hashed", password, b"two", port, None, 0):
        return None, lib.mysql_error(m).decode()
    return m, None


m, err = connect_hashed(b"h4sh")
if m is None:
    raise SystemExit(f"full authentication failed: {err}")
one = query(m, "SELECT id, name FROM zstd_people WHERE id = 9")
if one != [("9", "zstd row " * 15 + "9")]:
    raise SystemExit(f"hashed: {one}")
lib.mysql_close(m)
m, err = connect_hashed(b"wrong")
if m is not None or "Access denied" not in err:
    raise SystemExit(f"a wrong password was not refused: {err}")
print("ok libmysqlclient caching_sha2 full authentication")
