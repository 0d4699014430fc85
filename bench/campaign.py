"""Campaign benchmark: launch a review over 200,000 grants, then 1,000 bulk decisions, then the web
pages people open on such a campaign.

    .venv/bin/python bench/campaign.py

Uses bench/authorize.py's directory (10,000 users; 100 organizations x 20 projects x 50 documents)
scaled to 200,000 grants, in a fresh SQLite file. Prints the launch time and the process's peak
resident memory, the time of one request of 1,000 decisions through the API, and the median time of
the campaign page (its measures count every item), the busiest reviewer's queue page and an item page.
"""

from __future__ import annotations

import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from authorize import NOW, SECRET, build_directory  # noqa: E402

from accessreview import create_app  # noqa: E402
from accessreview.audit import WriteContext, lock_state  # noqa: E402
from accessreview.campaigns import definitions  # noqa: E402
from accessreview.campaigns.launch import launch  # noqa: E402
from accessreview.campaigns.schemas import DefinitionBody  # noqa: E402
from accessreview.directory import service  # noqa: E402
from accessreview.directory.schemas import GrantBody, PrincipalBody  # noqa: E402
from accessreview.models import ReviewItem  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from accessreview.tokens import create_token  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="accessreview-bench-campaign-"))
    url = f"sqlite:///{workdir / 'bench.sqlite3'}"
    t0 = time.perf_counter()
    built = build_directory(url, random.Random(7), grant_count=200_000)
    print(f"directory: {built['grants']:,} grants, {built['resources']:,} resources (built in "
          f"{time.perf_counter() - t0:.1f} s)")
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": SECRET, "INSTANCE_DIR": str(workdir),
                      "REFRESH_INTERVAL": 0, "DECISION_FLUSH_INTERVAL": 0, "LOG_LEVEL": "WARNING",
                      "STALE_SYNC_ACTION": "flag"})
    engine = app.extensions["authz"]
    declarations = engine.policy.declarations
    with app.app_context():
        session = app.extensions["db"].session()
        lock_state(session)
        ctx = WriteContext("bench", NOW)
        service.put_principal(session, ctx, declarations, "user:lead", PrincipalBody(name="Lead"))
        service.create_grant(session, ctx, declarations, GrantBody(principal="user:lead", role="security_lead",
                                                                   resource="system:accessreview"))
        token, _ = create_token(session, ctx, SECRET, "user:lead")
        created = definitions.create_definition(session, ctx, DefinitionBody.model_validate({
            "name": "Everything", "reviewer": {"rule": "resource_owner"}, "fallback_reviewer": "user:lead",
            "duration_days": 14, "on_no_response": "recommendation"}), set(declarations.resource_types))
        session.commit()
        session.close()
        engine.snapshot()
        before = rss_mb()

        session = app.extensions["db"].session()
        t0 = time.perf_counter()
        ctx = WriteContext("bench", NOW)
        campaign, _ = launch(session, ctx, engine, definitions.get_definition(session, created["id"]), "bench",
                             max_sync_age_hours=48, stale_action="flag")
        session.commit()
        launch_seconds = time.perf_counter() - t0
        print(f"launch: {campaign.population_count:,} review items in {launch_seconds:.1f} s; peak resident "
              f"memory {rss_mb():.0f} MB (before the launch: {before:.0f} MB)")
        ids = [i for (i,) in session.query(ReviewItem.id).filter(ReviewItem.campaign_id == campaign.id)
               .order_by(ReviewItem.id).limit(1000)]
        reviewer, reviewer_items = session.execute(
            select(ReviewItem.reviewer, func.count()).where(ReviewItem.campaign_id == campaign.id)
            .group_by(ReviewItem.reviewer).order_by(func.count().desc()).limit(1)).one()
        reviewer_token, _ = create_token(session, WriteContext("bench", NOW), SECRET, reviewer)
        session.commit()
        session.close()
        engine.refresh()

    client = app.test_client()
    body = {"decisions": [{"item": i, "decision": "keep"} for i in ids]}
    t0 = time.perf_counter()
    response = client.post(f"/v1/campaigns/{campaign.id}/decisions", json=body,
                           headers={"Authorization": f"Bearer {token}"})
    seconds = time.perf_counter() - t0
    assert response.status_code == 200, response.get_json()
    print(f"1,000 bulk decisions (one request, as a security lead's override): {seconds:.2f} s")

    lead_pages, reviewer_pages = app.test_client(), app.test_client()
    lead_pages.post("/ui/sign-in/token", data={"token": token})
    reviewer_pages.post("/ui/sign-in/token", data={"token": reviewer_token})
    for pages, what, url in (
            (lead_pages, "the campaign page (its measures count all items)", f"/ui/campaigns/{campaign.id}"),
            (reviewer_pages, f"the queue page of the busiest reviewer ({reviewer_items:,} items, 100 a page)",
             f"/ui/reviews?campaign={campaign.id}"),
            (lead_pages, "an item page", f"/ui/review-items/{ids[-1]}")):
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            response = pages.get(url)
            times.append(time.perf_counter() - t0)
            assert response.status_code == 200, response.status_code
        print(f"web: {what}: median {statistics.median(times) * 1000:.0f} ms of 5")


if __name__ == "__main__":
    main()
