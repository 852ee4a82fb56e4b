// Shared by the Node.js ORM scripts: arguments and a loud check.
const [host, port, keyspace] = process.argv.slice(2);

function check(cond, what) {
  if (!cond) {
    throw new Error(`FAILED: ${what}`);
  }
}

// Runs `main`, exiting non-zero (with the error) when it fails.
function run(main) {
  main().then(
    () => process.exit(0),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}

module.exports = { host, port: Number(port), keyspace, check, run };
