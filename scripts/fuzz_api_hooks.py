"""schemathesis hooks for scripts/fuzz-api: a request the platform refuses writes nothing.

Before every call the row count of every table of every service database is taken;
after a call answered as a refusal (a malformed request: 400, 401, 404, 405, 413,
415; an idempotency key reused or still in flight) the counts must be the same.
Business refusals that the idempotency layer stores as the key's answer (402, 409,
422 with a business type) write that answer by design and are not refusals here.
The fuzzer runs with one worker, so no other request of its own runs in between.
"""

import os

import psycopg
import schemathesis

PG_PORT = os.environ["FUZZ_PG_PORT"]
DATABASES = ["orders", "inventory", "payments", "email", "coordinator"]
REFUSED_STATUSES = {400, 401, 404, 405, 413, 415}
REFUSED_TYPES = {
    "urn:txlab:problem:idempotency-key-reused",
    "urn:txlab:problem:idempotency-key-in-flight",
}


class Counter:
    """One connection per database and one query counting every table's rows."""

    def __init__(self):
        self.databases = []
        for name in DATABASES:
            conn = psycopg.connect(f"postgresql://postgres@127.0.0.1:{PG_PORT}/{name}", autocommit=True)
            tables = [
                row[0]
                for row in conn.execute(
                    "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables"
                    " WHERE relname <> '_sqlx_migrations' ORDER BY 1"
                )
            ]
            query = "SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in tables)
            self.databases.append((name, conn, tables, query))

    def counts(self):
        found = {}
        for name, conn, tables, query in self.databases:
            row = conn.execute(query).fetchone()
            found.update({f"{name}.{table}": n for table, n in zip(tables, row)})
        return found


COUNTER = None
BEFORE = {}


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    global COUNTER
    if COUNTER is None:
        COUNTER = Counter()
    BEFORE[id(case)] = COUNTER.counts()


def refused(response):
    if response.status_code in REFUSED_STATUSES:
        return True
    if response.status_code in (409, 422):
        try:
            return response.json().get("type") in REFUSED_TYPES
        except ValueError:
            return False
    return False


@schemathesis.check
def refused_requests_write_nothing(ctx, response, case):
    """A request answered as a refusal leaves every table's row count as it was."""
    before = BEFORE.pop(id(case), None)
    if before is None or not refused(response):
        return None
    after = COUNTER.counts()
    changed = {t: (before[t], after.get(t)) for t in before if before[t] != after.get(t)}
    if changed:
        listed = ", ".join(f"{t}: {a} -> {b}" for t, (a, b) in sorted(changed.items()))
        raise AssertionError(f"refused with {response.status_code}, yet rows changed: {listed}")
    return None
