"""The `mysql` command-line client in an interactive session on a pseudo-terminal, as a person
would use it: connect, USE (which reads table and column names for completion), SHOW TABLES,
DESCRIBE, a query, \\q. Run by tests/clients.rs as `python mysql_interactive.py HOST PORT`.
"""

import sys

import pexpect

host, port = sys.argv[1], sys.argv[2]
child = pexpect.spawn(
    "mysql", ["-h", host, "-P", port, "-uapp", "-psecret", "--auto-rehash"],
    encoding="utf-8", timeout=20, dimensions=(50, 200),
)
child.logfile_read = sys.stdout
PROMPT = r"\[(\(none\)|two)\]> "
child.expect(PROMPT)
child.sendline("USE two;")
child.expect("Database changed")
child.expect(PROMPT)
child.sendline("SHOW TABLES;")
child.expect(r"\| cli_people")
child.expect(PROMPT)
child.sendline("DESCRIBE cli_people;")
child.expect(r"\| name +\| varchar\(50\)")
child.expect(PROMPT)
child.sendline("SELECT id, name FROM cli_people WHERE id = 2;")
child.expect(r"\| +2 \| two +\|")
child.expect(r"1 row in set")
child.expect(PROMPT)
# Table-name completion (COM_FIELD_LIST came with USE): `cli_p` + TAB completes the name.
child.send("SELECT COUNT(*) FROM cli_p\t;\r")
child.expect(r"\| +3 \|")
child.expect(PROMPT)
child.sendline("\\q")
child.expect("Bye")
child.expect(pexpect.EOF)
child.close()
if child.exitstatus != 0:
    raise SystemExit(f"mysql exited with {child.exitstatus}")
print("\nok mysql interactive")
