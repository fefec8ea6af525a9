"""Merging a joint inspection synced in many orders: time per full merge, and proof the result never changes.

    .venv/bin/python benchmarks/merge.py [--departments 6] [--findings 50] [--edits 3] [--orders 100]
                                         [--database sqlite|URL] [--seed 1]

A team of D departments (two tablets each) captures offline: every department
records F findings (one per check item, the first item of every department
declared equivalent), each finding written E times on its tablet (created,
then changed), and every tablet sets the shared fields (place,
representative, conclusion, end) and adds a soft measure — concurrent edits
that must merge field by field. The outboxes are then synced in N random
orders: random interleavings of the tablets, random batch sizes, each tablet
draining its outbox as the field client does (one mutation per entity per
batch, rebasing on its own confirmed writes), through the real push service,
each order on a server that has forgotten the previous one (sync tables
emptied; directory and task kept). A full merge = every push of that order
plus building the joint record's canonical bytes. Prints the median and p95
time per full merge and per record, and the SHA-256 of the joint record for
every order — one digest if all orders agree — and a last ``result:`` line (JSON); exits 1 if the
orders disagree. --quick: a tiny team and five orders, for the test suite.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def build_app(database: str, var: Path):  # type: ignore[no-untyped-def]
    from flask_migrate import upgrade
    from sqlalchemy import create_engine, text

    from server import create_app

    url = f"sqlite:///{var / 'merge.db'}" if database == "sqlite" else database
    if url.startswith("postgresql"):
        with create_engine(url).begin() as connection:  # a fresh schema: this database is the benchmark's
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url},
                     env={"INSPECT_ONCE_VAR": str(var), "MEDIA_ROOT": str(var / "media")})
    with app.app_context():
        upgrade(directory=app.extensions["migrate"].directory, revision="heads")
    return app


def capture(team, findings: int, edits: int, rng: random.Random):  # type: ignore[no-untyped-def]
    from tests.server.joint import scenario as sc

    tablets = sc.tablets_for(team, int(time.time() * 1000) - 6 * 3_600_000, rng)
    by_department: dict[str, list] = {}
    for tablet in tablets:
        by_department.setdefault(tablet.department.code, []).append(tablet)
    for code, own in by_department.items():
        for n, item in enumerate(team.items[code][:findings]):
            tablet = own[n % len(own)]
            for edit in range(edits):
                result = rng.choice(sc.RESULTS) if edit == edits - 1 else "compliant"
                tablet.record_finding(item, result, rng.choice(sc.NOTES), rng.randrange(0, 2000))
    for tablet in tablets:
        for name in ("place", "representative", "conclusion", "ended_at"):
            tablet.set_shared(name, rng.choice(sc.SHARED_VALUES[name]), rng.randrange(0, 5000))
        tablet.add_soft_measure(rng.choice(sc.SOFT), rng.randrange(0, 5000))
    return tablets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--departments", type=int, default=6)
    parser.add_argument("--findings", type=int, default=50)
    parser.add_argument("--edits", type=int, default=3)
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--database", default="sqlite", help="sqlite (a temporary file) or a PostgreSQL URL to wipe")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="2 departments, 3 findings, 5 orders (the test suite)")
    args = parser.parse_args()
    if args.quick:
        args.departments, args.findings, args.edits, args.orders = 2, 3, 2, 5

    with tempfile.TemporaryDirectory(prefix="merge-bench-") as tmp:
        app = build_app(args.database, Path(tmp))
        with app.app_context():
            from server.extensions import db
            from tests.server.joint import scenario as sc

            rng = random.Random(args.seed)
            team = sc.build_team(args.departments, items_per_department=args.findings)
            tablets = capture(team, args.findings, args.edits, rng)
            mutations = sum(len(t.outbox) for t in tablets)
            print(f"team: {args.departments} departments, {len(tablets)} tablets; "
                  f"{args.departments * args.findings} findings x {args.edits} offline edits; "
                  f"{mutations} mutations per order; database: {db.engine.dialect.name}")

            totals, records, digests, statuses = [], [], [], {}
            for order in range(args.orders):
                sc.reset_sync_state()
                db.session.commit()
                shuffled = tablets[:]
                rng.shuffle(shuffled)
                schedule = [(rng.randrange(len(tablets)), rng.randint(1, 120)) for _ in range(rng.randint(10, 80))]
                started = time.perf_counter()
                outcome = sc.sync_in_order(shuffled, schedule)
                db.session.commit()
                merged_at = time.perf_counter()
                data = sc.merged_bytes(team)
                done = time.perf_counter()
                totals.append(done - started)
                records.append(done - merged_at)
                digests.append(hashlib.sha256(data).hexdigest())
                for status, count in outcome.statuses.items():
                    statuses[status] = statuses.get(status, 0) + count
                if order == 0:
                    print(f"joint record: {len(data)} bytes")

            distinct = sorted(set(digests))
            print(f"orders: {args.orders}; results over all orders: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
            print(f"full merge (all pushes + joint record): median {statistics.median(totals) * 1000:.0f} ms, "
                  f"p95 {percentile(totals, 0.95) * 1000:.0f} ms")
            print(f"joint record alone:                     median {statistics.median(records) * 1000:.0f} ms, "
                  f"p95 {percentile(records, 0.95) * 1000:.0f} ms")
            print(f"distinct SHA-256 of joint_record_json over {args.orders} orders: {len(distinct)}")
            for digest in distinct:
                print(f"  {digest}  x{digests.count(digest)}")
            print("result: " + json.dumps({
                "benchmark": "merge", "quick": args.quick, "database": db.engine.dialect.name,
                "orders": args.orders, "mutations_per_order": mutations,
                "merge_median_ms": round(statistics.median(totals) * 1000, 1),
                "merge_p95_ms": round(percentile(totals, 0.95) * 1000, 1),
                "record_median_ms": round(statistics.median(records) * 1000, 1), "distinct_digests": len(distinct)}))
            return 0 if len(distinct) == 1 else 1


if __name__ == "__main__":
    os.environ.setdefault("INSPECT_ONCE_DEBUG", "1")
    sys.exit(main())
