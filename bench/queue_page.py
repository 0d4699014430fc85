"""The reviewer's queue page on a campaign database that ``bench/campaign.py --pages-only`` left
(a PostgreSQL database is kept; so is a SQLite file, whose path it prints): each page timed, and
each SQL statement of one rendering with its time, to see where a page's time goes.

    .venv/bin/python bench/campaign.py --pages-only --database-url postgresql+psycopg://postgres@127.0.0.1/arbench
    .venv/bin/python bench/queue_page.py --database-url postgresql+psycopg://postgres@127.0.0.1/arbench

Target (issue 22): the busiest reviewer's queue page under 300 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from authorize import NOW, SECRET  # noqa: E402
from sqlalchemy import event, func, select  # noqa: E402

from accessreview import create_app  # noqa: E402
from accessreview.audit import WriteContext  # noqa: E402
from accessreview.models import ReviewItem  # noqa: E402
from accessreview.tokens import create_token  # noqa: E402
from accessreview.work import own_unit_of_work  # noqa: E402

TARGET_MS = 300


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="accessreview-bench-queue-"))
    app = create_app({"DATABASE_URL": args.database_url, "SECRET_KEY": SECRET, "INSTANCE_DIR": str(workdir),
                      "REPORTS_DIR": str(workdir), "REFRESH_INTERVAL": 0, "DECISION_FLUSH_INTERVAL": 0,
                      "LOG_LEVEL": "WARNING", "STALE_SYNC_ACTION": "flag"})
    sessions = app.extensions["db"].sessionmaker
    with app.app_context():
        session = sessions()
        campaign_id = session.scalar(select(func.max(ReviewItem.campaign_id)))
        reviewer, count = session.execute(
            select(ReviewItem.reviewer, func.count()).where(ReviewItem.campaign_id == campaign_id)
            .group_by(ReviewItem.reviewer).order_by(func.count().desc()).limit(1)).one()
        session.close()
        with own_unit_of_work(sessions, WriteContext("bench", NOW)) as (session, ctx):
            token, _ = create_token(session, ctx, SECRET, reviewer)
        app.extensions["authz"].refresh()
    pages = app.test_client()
    pages.post("/ui/sign-in/token", data={"token": token})
    statements: list[tuple[float, str]] = []

    @event.listens_for(app.extensions["db"].engine, "before_cursor_execute")
    def _start(conn, cursor, statement, parameters, context, executemany):
        conn.info["started"] = time.perf_counter()

    @event.listens_for(app.extensions["db"].engine, "after_cursor_execute")
    def _end(conn, cursor, statement, parameters, context, executemany):
        statements.append((time.perf_counter() - conn.info.pop("started"), " ".join(statement.split())))

    print(f"{args.database_url.split(':', 1)[0]}: campaign {campaign_id}, busiest reviewer {reviewer} "
          f"({count:,} items, 100 a page)")
    for what, url in (("the queue of the campaign", f"/ui/reviews?campaign={campaign_id}"),
                      ("\"My reviews\" (every campaign)", "/ui/reviews"),
                      ("page 500 of those recommended revoke",
                       f"/ui/reviews?campaign={campaign_id}&recommendation=revoke&page=500"),
                      ("searched by one person (user:u1234)", f"/ui/reviews?campaign={campaign_id}&person=user:u1234"),
                      ("decided ones", f"/ui/reviews?campaign={campaign_id}&status=decided")):
        times = []
        for _ in range(args.runs):
            statements.clear()
            t0 = time.perf_counter()
            response = pages.get(url)
            times.append(time.perf_counter() - t0)
            assert response.status_code == 200, response.status_code
        median = statistics.median(times) * 1000
        print(f"  {what}: median {median:.0f} ms of {args.runs} (target < {TARGET_MS} ms: "
              f"{'met' if median < TARGET_MS else 'NOT met'}); its statements, last run:")
        for took, statement in statements:
            print(f"    {took * 1000:7.1f} ms  {statement[:150]}")


if __name__ == "__main__":
    main()
