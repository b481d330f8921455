#!/usr/bin/env python3
"""DBOS (Python, PostgreSQL system database) per-step cost, to compare with Stepwise's.

Usage: bench.py DATABASE_URL [--rounds N] [--steps 1000] [--fanout 100] [--commits 200]

DATABASE_URL is a libpq-style URL of a role that may create databases, e.g.
postgres://postgres@/postgres?host=/tmp/pgt/socket&port=5432 (a Unix socket) or
postgresql://user:pass@127.0.0.1:5432/postgres. A fresh database dbos_bench_<pid> is created on
that server for the run and dropped at the end; DBOS builds its system schema ("dbos") in it.

One process. One warm-up round (not counted), then N rounds, each running in turn:
  chain        one workflow calling 1,000 @DBOS.step() functions in sequence, each a trivial
               data-only step (a small dict derived from the previous step's). Whole-workflow wall
               time (workflow start and finish included) and, measured inside the workflow, the
               time from the first step's call to the last step's return; also the CPU time of
               the calling thread (DBOS + SQLAlchemy + psycopg on the client).
  fanout_*     one workflow running 100 steps concurrently and joining them, three ways:
               queue_default  DBOS's documented way (its README's "Durable Queues" example): the
                              workflow enqueues 100 steps on a queue with DBOS.enqueue_workflow and
                              waits on every handle's get_result(); each enqueued step runs as its
                              own (child) workflow whose step output is checkpointed, and the parent
                              checkpoints each enqueue and each get_result. Queue and handle polling
                              left at DBOS's defaults (1 s each).
               queue_tuned    the same, with the queue's polling_interval_sec and get_result's
                              polling_interval_sec at --fast-poll (0.01 s): what the queue machinery
                              costs once its polling waits are made small.
               gather         an async workflow awaiting asyncio.gather() over 100 async
                              @DBOS.step() calls: each step checkpointed in the parent workflow
                              (DBOS assigns the step ids when the coroutines are made, in order).
  floor        one durable commit on the same server: BEGIN; INSERT one small row; COMMIT on a
               plain psycopg connection, --commits times; the round's value is the median.
Each figure is the median over the N rounds. Prints one JSON object on stdout (logs on stderr).
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import threading
import time
from importlib.metadata import version as pkg_version
from urllib.parse import urlsplit, urlunsplit

import psycopg
import sqlalchemy as sa
from dbos import DBOS, DBOSConfig, SetWorkflowID

# --------------------------------------------------------------------------------------------
# The workflows and steps. Registered at import, before DBOS is constructed, as DBOS requires.


@DBOS.step()
def chain_step(prev: dict) -> dict:
    # Data-only: the next small value from the previous one.
    return {"i": prev["i"] + 1, "acc": prev["acc"] + prev["i"] + 1}


@DBOS.workflow()
def chain_workflow(n: int) -> dict:
    value = {"i": 0, "acc": 0}
    first = time.perf_counter()
    for _ in range(n):
        value = chain_step(value)
    last = time.perf_counter()
    return {"value": value, "steps_s": last - first}


@DBOS.step()
def fan_step(i: int) -> dict:
    return {"i": i, "sq": i * i}


# The fan-out DBOS documents (its README's "Durable Queues", the queue tutorial): each of the
# 100 steps is enqueued, so it runs as a child workflow of its own whose step output is
# checkpointed; the parent checkpoints each enqueue (child id) and each get_result.
@DBOS.workflow()
def fanout_queue_workflow(n: int, queue_name: str, poll_s) -> list:
    # The README's queue pattern: enqueue every task, then wait for each handle in turn.
    handles = [DBOS.enqueue_workflow(queue_name, fan_step, i) for i in range(n)]
    if poll_s is None:
        return [h.get_result() for h in handles]
    return [h.get_result(polling_interval_sec=poll_s) for h in handles]


@DBOS.step()
async def fan_step_async(i: int) -> dict:
    return {"i": i, "sq": i * i}


# The in-workflow alternative: async steps awaited together. Each call takes its step id when
# its coroutine is made (in order), and each step's output is checkpointed in this workflow.
@DBOS.workflow()
async def fanout_gather_workflow(n: int) -> list:
    return list(await asyncio.gather(*[fan_step_async(i) for i in range(n)]))


# --------------------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[dbos-bench] {msg}", file=sys.stderr, flush=True)


def with_database(url: str, dbname: str, scheme=None) -> str:
    parts = urlsplit(url)
    return urlunsplit(
        (scheme or parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment)
    )


def median(xs):
    return statistics.median(xs) if xs else None


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)


def queue_worker_alive(name: str) -> bool:
    return any(t.name == f"queue-worker-{name}" and t.is_alive() for t in threading.enumerate())


class Bench:
    def __init__(self, args, db_libpq_url: str, db_sa_url: str):
        self.args = args
        self.db_libpq_url = db_libpq_url
        self.db_sa_url = db_sa_url
        # A plain connection, for the floor and for counting rows (never during a timed DBOS run).
        self.conn = psycopg.connect(db_libpq_url)
        self.probe = psycopg.connect(db_libpq_url, autocommit=True)
        self.conn.execute(
            "CREATE TABLE floor_rows (id bigserial PRIMARY KEY, round int NOT NULL, payload text NOT NULL)"
        )
        self.conn.commit()
        self.schema = "dbos"

    # ---- counting what DBOS wrote ---------------------------------------------------------

    def count(self, sql: str, params=()) -> int:
        return self.probe.execute(sql, params).fetchone()[0]

    def step_rows(self, workflow_id: str) -> int:
        return self.count(
            f"SELECT count(*) FROM {self.schema}.operation_outputs WHERE workflow_uuid = %s",
            (workflow_id,),
        )

    def child_ids(self, parent_id: str) -> list:
        rows = self.probe.execute(
            f"SELECT child_workflow_id FROM {self.schema}.operation_outputs "
            "WHERE workflow_uuid = %s AND child_workflow_id IS NOT NULL",
            (parent_id,),
        ).fetchall()
        return sorted({r[0] for r in rows})

    def xid(self) -> int:
        # Each call takes one xid itself; only transactions that write take one.
        return int(self.probe.execute("SELECT txid_current()").fetchone()[0])

    # ---- the measurements ----------------------------------------------------------------

    def chain(self, tag: str, engine=None) -> dict:
        n = self.args.steps
        wf_id = f"chain-{tag}"
        counters = {"statements": 0, "checkouts": 0}

        def on_stmt(*_a, **_k):
            counters["statements"] += 1

        def on_checkout(*_a, **_k):
            counters["checkouts"] += 1

        if engine is not None:
            sa.event.listen(engine, "before_cursor_execute", on_stmt)
            sa.event.listen(engine.pool, "checkout", on_checkout)
        x0 = self.xid()
        c0 = time.thread_time()  # a workflow called directly runs in the calling thread
        t0 = time.perf_counter()
        with SetWorkflowID(wf_id):
            out = chain_workflow(n)
        wall = time.perf_counter() - t0
        cpu = time.thread_time() - c0
        x1 = self.xid()
        if engine is not None:
            sa.event.remove(engine, "before_cursor_execute", on_stmt)
            sa.event.remove(engine.pool, "checkout", on_checkout)
        assert out["value"]["i"] == n, out
        rows = self.step_rows(wf_id)
        if rows != n:
            raise RuntimeError(f"chain {wf_id}: {rows} operation_outputs rows for {n} steps")
        res = {
            "wall_ms": wall * 1e3,
            "per_step_us": wall / n * 1e6,
            "steps_only_per_step_us": out["steps_s"] / n * 1e6,
            "workflow_overhead_ms": (wall - out["steps_s"]) * 1e3,
            # CPU time of this Python thread (DBOS + SQLAlchemy + psycopg), not the server's.
            "client_cpu_per_step_us": cpu / n * 1e6,
            "step_rows": rows,
            # Cluster-wide: other clients' writes in the same window would count too.
            "write_xacts_per_step_approx": (x1 - x0 - 1) / n,
        }
        if engine is not None:
            res["sql_statements_per_step"] = counters["statements"] / n
            res["pool_checkouts_per_step"] = counters["checkouts"] / n
        return res

    def fanout_queue(self, tag: str, queue_name: str, poll_s) -> dict:
        n = self.args.fanout
        wf_id = f"fanout-{queue_name}-{tag}"
        x0 = self.xid()
        c0 = time.process_time()
        t0 = time.perf_counter()
        with SetWorkflowID(wf_id):
            out = fanout_queue_workflow(n, queue_name, poll_s)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0
        x1 = self.xid()
        assert [o["i"] for o in out] == list(range(n)), out
        children = self.child_ids(wf_id)
        if len(children) != n:
            raise RuntimeError(f"{wf_id}: {len(children)} child workflows, expected {n}")
        child_rows = self.count(
            f"SELECT count(*) FROM {self.schema}.operation_outputs "
            "WHERE workflow_uuid = ANY(%s) AND output IS NOT NULL",
            (children,),
        )
        if child_rows != n:
            raise RuntimeError(f"{wf_id}: {child_rows} step outputs in the children, expected {n}")
        child_status = self.count(
            f"SELECT count(*) FROM {self.schema}.workflow_status "
            "WHERE workflow_uuid = ANY(%s) AND status = 'SUCCESS'",
            (children,),
        )
        return {
            "wall_ms": wall * 1e3,
            "client_cpu_ms": cpu * 1e3,
            "write_xacts_per_step_approx": (x1 - x0 - 1) / n,
            "parent_step_rows": self.step_rows(wf_id),
            "child_step_rows": child_rows,
            "child_workflow_rows": child_status,
        }

    def fanout_gather(self, tag: str) -> dict:
        n = self.args.fanout
        wf_id = f"fanout-gather-{tag}"

        async def run():
            with SetWorkflowID(wf_id):
                return await fanout_gather_workflow(n)

        x0 = self.xid()
        c0 = time.process_time()
        t0 = time.perf_counter()
        out = asyncio.run(run())
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0
        x1 = self.xid()
        assert [o["i"] for o in out] == list(range(n)), out
        rows = self.step_rows(wf_id)
        if rows != n:
            raise RuntimeError(f"{wf_id}: {rows} operation_outputs rows for {n} steps")
        return {
            "wall_ms": wall * 1e3,
            "client_cpu_ms": cpu * 1e3,
            "write_xacts_per_step_approx": (x1 - x0 - 1) / n,
            "step_rows": rows,
        }

    def floor(self, round_no: int) -> dict:
        samples = []
        for i in range(self.args.commits):
            t0 = time.perf_counter()
            # psycopg opens the transaction (BEGIN) before the first statement.
            self.conn.execute(
                "INSERT INTO floor_rows (round, payload) VALUES (%s, %s)",
                (round_no, f'{{"i": {i}, "acc": {i * 2}}}'),
            )
            self.conn.commit()
            samples.append(time.perf_counter() - t0)
        return {"commit_us": statistics.median(samples) * 1e6}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", help="libpq-style URL of a role that may CREATE DATABASE")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=1000, help="steps in the chain workflow")
    p.add_argument("--fanout", type=int, default=100, help="concurrent steps in each fan-out")
    p.add_argument("--commits", type=int, default=200, help="commits per floor measurement")
    p.add_argument("--fast-poll", type=float, default=0.01, help="polling interval of queue_tuned (s)")
    p.add_argument("--keep-db", action="store_true", help="do not drop the database at the end")
    args = p.parse_args()
    if args.rounds < 1:
        p.error("--rounds must be at least 1")

    # Anything printed on stdout but the final JSON would spoil it: send it to stderr.
    real_stdout = sys.stdout
    sys.stdout = sys.stderr

    parts = urlsplit(args.url)
    if parts.scheme not in ("postgres", "postgresql"):
        p.error(f"expected a postgres:// or postgresql:// URL, got scheme {parts.scheme!r}")
    dbname = f"dbos_bench_{os.getpid()}"
    db_libpq_url = with_database(args.url, dbname)
    # SQLAlchemy's URL: same user, host (query ?host=/socket/dir works too), port and query,
    # scheme postgresql (SQLAlchemy no longer knows "postgres"); DBOS picks the psycopg driver.
    db_sa_url = with_database(args.url, dbname, scheme="postgresql")

    with psycopg.connect(args.url, autocommit=True) as admin:
        server_version = admin.execute("SHOW server_version").fetchone()[0]
        admin.execute(f'CREATE DATABASE "{dbname}"')
    log(f"created database {dbname} on PostgreSQL {server_version}")

    result = {}
    launched = False
    try:
        config: DBOSConfig = {
            "name": "stepwise-dbos-bench",
            "system_database_url": db_sa_url,
            "log_level": "WARNING",
        }
        t0 = time.perf_counter()
        DBOS(config=config)
        launched = True  # destroy() from here on, even if launch() fails
        DBOS.launch()
        launch_s = time.perf_counter() - t0
        log(f"DBOS launched in {launch_s * 1e3:.0f} ms (fresh database: includes its migrations)")

        from dbos._dbos import _get_dbos_instance  # private: only for the sanity counters

        sys_db = _get_dbos_instance()._sys_db
        engine = sys_db.engine
        with engine.connect() as c:
            dbos_session = dict(
                c.execute(
                    sa.text(
                        "SELECT name, setting FROM pg_settings WHERE name IN "
                        "('synchronous_commit', 'fsync', 'wal_sync_method', 'full_page_writes', "
                        "'idle_in_transaction_session_timeout', 'application_name')"
                    )
                ).fetchall()
            )

        bench = Bench(args, db_libpq_url, db_sa_url)
        bench.schema = sys_db.schema or "dbos"

        DBOS.register_queue("bench_default")  # polling at DBOS's default (1 s)

        def fanout_tuned(tag: str) -> dict:
            # Registered only for its own phase, so that its fast poll loads nothing else.
            DBOS.register_queue("bench_fast", polling_interval_sec=args.fast_poll)
            wait_for(lambda: queue_worker_alive("bench_fast"), 10, "the bench_fast queue worker")
            try:
                return bench.fanout_queue(tag, "bench_fast", args.fast_poll)
            finally:
                DBOS.delete_queue("bench_fast")
                wait_for(lambda: not queue_worker_alive("bench_fast"), 10, "the bench_fast worker to stop")

        wait_for(lambda: queue_worker_alive("bench_default"), 10, "the bench_default queue worker")

        rounds = []
        for r in range(args.rounds + 1):
            tag = "warmup" if r == 0 else f"r{r}"
            rec = {
                # The warm-up counts SQL statements per step (event hooks off in counted rounds).
                "chain": bench.chain(tag, engine=engine if r == 0 else None),
                "fanout_queue_default": bench.fanout_queue(tag, "bench_default", None),
                "fanout_queue_tuned": fanout_tuned(tag),
                "fanout_gather": bench.fanout_gather(tag),
                "floor": bench.floor(r),
            }
            log(
                f"{tag}: chain {rec['chain']['per_step_us']:.0f} us/step "
                f"(steps only {rec['chain']['steps_only_per_step_us']:.0f}, "
                f"client CPU {rec['chain']['client_cpu_per_step_us']:.0f}), "
                f"fan-out queue default {rec['fanout_queue_default']['wall_ms']:.0f} ms, "
                f"queue tuned {rec['fanout_queue_tuned']['wall_ms']:.0f} ms, "
                f"gather {rec['fanout_gather']['wall_ms']:.0f} ms, "
                f"floor {rec['floor']['commit_us']:.0f} us/commit"
            )
            if r == 0:
                warmup = rec
            else:
                rounds.append(rec)

        def med(section: str, key: str):
            return median([rec[section][key] for rec in rounds])

        fan_n = args.fanout
        result = {
            "tool": "dbos",
            "dbos_version": pkg_version("dbos"),
            "sqlalchemy_version": pkg_version("sqlalchemy"),
            "psycopg_version": pkg_version("psycopg"),
            "python": sys.version.split()[0],
            "postgresql": server_version,
            "dbos_system_schema": bench.schema,
            "dbos_session_settings": dbos_session,
            "rounds": args.rounds,
            "launch_ms": launch_s * 1e3,
            "chain": {
                "steps": args.steps,
                "per_step_us": med("chain", "per_step_us"),
                "steps_only_per_step_us": med("chain", "steps_only_per_step_us"),
                "wall_ms": med("chain", "wall_ms"),
                "workflow_overhead_ms": med("chain", "workflow_overhead_ms"),
                "client_cpu_per_step_us": med("chain", "client_cpu_per_step_us"),
                "operation_outputs_rows_per_step": med("chain", "step_rows") / args.steps,
                "write_xacts_per_step_approx": med("chain", "write_xacts_per_step_approx"),
                "sql_statements_per_step_warmup": warmup["chain"].get("sql_statements_per_step"),
                "pool_checkouts_per_step_warmup": warmup["chain"].get("pool_checkouts_per_step"),
            },
            "fanout": {
                "steps": fan_n,
                "queue_default": {
                    "wall_ms": med("fanout_queue_default", "wall_ms"),
                    "client_cpu_ms": med("fanout_queue_default", "client_cpu_ms"),
                    "write_xacts_per_step_approx": med("fanout_queue_default", "write_xacts_per_step_approx"),
                    "polling_s": 1.0,
                    "operation_outputs_rows_per_step": (
                        med("fanout_queue_default", "parent_step_rows")
                        + med("fanout_queue_default", "child_step_rows")
                    )
                    / fan_n,
                    "workflow_status_rows_per_step": med("fanout_queue_default", "child_workflow_rows") / fan_n,
                },
                "queue_tuned": {
                    "wall_ms": med("fanout_queue_tuned", "wall_ms"),
                    "client_cpu_ms": med("fanout_queue_tuned", "client_cpu_ms"),
                    "write_xacts_per_step_approx": med("fanout_queue_tuned", "write_xacts_per_step_approx"),
                    "polling_s": args.fast_poll,
                    "operation_outputs_rows_per_step": (
                        med("fanout_queue_tuned", "parent_step_rows")
                        + med("fanout_queue_tuned", "child_step_rows")
                    )
                    / fan_n,
                    "workflow_status_rows_per_step": med("fanout_queue_tuned", "child_workflow_rows") / fan_n,
                },
                "gather": {
                    "wall_ms": med("fanout_gather", "wall_ms"),
                    "client_cpu_ms": med("fanout_gather", "client_cpu_ms"),
                    "write_xacts_per_step_approx": med("fanout_gather", "write_xacts_per_step_approx"),
                    "operation_outputs_rows_per_step": med("fanout_gather", "step_rows") / fan_n,
                },
            },
            "floor": {
                "commits_per_round": args.commits,
                "commit_us": med("floor", "commit_us"),
            },
            "per_round": {
                "chain_per_step_us": [round(x["chain"]["per_step_us"], 1) for x in rounds],
                "fanout_queue_default_ms": [round(x["fanout_queue_default"]["wall_ms"], 1) for x in rounds],
                "fanout_queue_tuned_ms": [round(x["fanout_queue_tuned"]["wall_ms"], 1) for x in rounds],
                "fanout_gather_ms": [round(x["fanout_gather"]["wall_ms"], 1) for x in rounds],
                "floor_commit_us": [round(x["floor"]["commit_us"], 1) for x in rounds],
            },
        }
        bench.conn.close()
        bench.probe.close()
    finally:
        if launched:
            DBOS.destroy()
        if args.keep_db:
            log(f"kept database {dbname}")
        else:
            with psycopg.connect(args.url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            log(f"dropped database {dbname}")

    real_stdout.write(json.dumps(result, indent=2) + "\n")
    real_stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
