"""Campaign benchmark: a review over 200,000 grants from launch to verified remediation, on SQLite or
PostgreSQL, through the same jobs the worker runs.

    .venv/bin/python bench/campaign.py                                   # a fresh SQLite file
    createdb -h 127.0.0.1 -U postgres arbench
    .venv/bin/python bench/campaign.py --database-url postgresql+psycopg://postgres@127.0.0.1/arbench

(a PostgreSQL database given here is emptied first). Uses bench/authorize.py's directory (10,000
users; 100 organizations x 20 projects x 50 documents) scaled to 200,000 grants. Prints, each with
the process's peak resident memory and the longest step (a step is one transaction):
  - the launch job (population frozen, items written a chunk a step, campaign opened);
  - 1,000 bulk decisions in one request, and the pages people open on such a campaign;
  - the close job (every undecided item revoked by the no-response rule);
  - the sign-off job through remediation: the sign-off report, 200,000 revocations applied and
    verified through the engine, the scope after, and the post-remediation report, phase by phase.
Then each of the issue's targets beside its figure. ``--pages-only`` stops after the pages.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import resource
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from authorize import NOW, SECRET, build_directory  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402

from accessreview import create_app, jobs  # noqa: E402
from accessreview.audit import WriteContext  # noqa: E402
from accessreview.campaigns import definitions, flows  # noqa: E402
from accessreview.campaigns.schemas import DefinitionBody  # noqa: E402
from accessreview.directory import service  # noqa: E402
from accessreview.directory.schemas import GrantBody, PrincipalBody  # noqa: E402
from accessreview.models import Job, ReviewItem  # noqa: E402
from accessreview.tokens import create_token  # noqa: E402
from accessreview.work import own_unit_of_work  # noqa: E402

TARGET_SECONDS, TARGET_MB = 60, 1024


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_peak_mb() -> float:
    """This process's peak resident memory since the last call (Linux: VmHWM, then reset), so that each
    phase's own peak is told apart from the whole run's."""
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    return peak


def empty_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


PROFILE: dict = {"phases": set(), "profiler": None}  # --profile: cProfile around the steps of these phases


def run_job(app, job_id: int) -> dict:
    """Every step of the job in this process, timed by phase; the job's wall time and longest step."""
    runner = jobs.runner(app)
    sessions = app.extensions["db"].sessionmaker
    phases: dict[str, float] = defaultdict(float)
    cpu: dict[str, float] = defaultdict(float)  # this process's own CPU time: the rest is waiting (the database)
    longest_by_phase: dict[str, float] = defaultdict(float)
    peak_by_phase: dict[str, float] = defaultdict(float)
    longest, started = (0.0, ""), time.perf_counter()
    step_peak_mb()
    while True:
        session = sessions()
        phase = session.get(Job, job_id).phase
        session.close()
        profiler = PROFILE["profiler"] if phase in PROFILE["phases"] else None
        t0, c0 = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        state = runner.step(job_id)
        if profiler:
            profiler.disable()
        took = time.perf_counter() - t0
        phases[phase] += took
        cpu[phase] += time.process_time() - c0
        longest_by_phase[phase] = max(longest_by_phase[phase], took)
        peak_by_phase[phase] = max(peak_by_phase[phase], step_peak_mb())
        longest = max(longest, (took, phase))
        if state in ("done", "failed", None):
            break
    assert state == "done", f"job {job_id} ended {state}"
    return {"seconds": time.perf_counter() - started, "phases": dict(phases), "cpu": dict(cpu), "longest": longest,
            "longest_by_phase": dict(longest_by_phase), "peak_by_phase": dict(peak_by_phase), "mb": rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (emptied first); default: new SQLite")
    parser.add_argument("--grants", type=int, default=200_000)
    parser.add_argument("--pages-only", action="store_true",
                        help="stop after the pages (no close, no sign-off): to measure the pages alone")
    parser.add_argument("--profile", default="", help="job phases to profile, comma-separated (apply,verify); "
                                                      "the 30 costliest functions are printed at the end")
    args = parser.parse_args()
    if args.profile:
        PROFILE.update(phases=set(args.profile.split(",")), profiler=cProfile.Profile())
    workdir = Path(tempfile.mkdtemp(prefix="accessreview-bench-campaign-"))
    url = args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}"
    if url.startswith("postgresql"):
        empty_postgres(url)
    t0 = time.perf_counter()
    built = build_directory(url, random.Random(7), grant_count=args.grants)
    print(f"{url.split(':', 1)[0]}: {built['grants']:,} grants, {built['resources']:,} resources (built in "
          f"{time.perf_counter() - t0:.1f} s)")
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": SECRET, "INSTANCE_DIR": str(workdir),
                      "REPORTS_DIR": str(workdir), "REFRESH_INTERVAL": 0, "DECISION_FLUSH_INTERVAL": 0,
                      "LOG_LEVEL": "WARNING", "STALE_SYNC_ACTION": "flag", "JOB_INLINE_SECONDS": 0})
    engine = app.extensions["authz"]
    declarations = engine.policy.declarations
    sessions = app.extensions["db"].sessionmaker
    ctx = WriteContext("user:lead", NOW)
    with app.app_context():
        with own_unit_of_work(sessions, ctx) as (session, ctx):
            service.put_principal(session, ctx, declarations, "user:lead", PrincipalBody(name="Lead"))
            service.create_grant(session, ctx, declarations, GrantBody(
                principal="user:lead", role="security_lead", resource="system:accessreview"))
            token, _ = create_token(session, ctx, SECRET, "user:lead")
            created = definitions.create_definition(session, ctx, DefinitionBody.model_validate({
                "name": "Everything", "reviewer": {"rule": "resource_owner"}, "fallback_reviewer": "user:lead",
                "duration_days": 14, "on_no_response": "revoke"}), set(declarations.resource_types))
        engine.snapshot()
        before = rss_mb()

        results = {}
        outcome = flows.launch(app, ctx, created["id"])
        results["launch"] = launched = run_job(app, outcome.job["id"])
        session = sessions()
        campaign_id = session.scalar(select(ReviewItem.campaign_id).limit(1))
        population = session.scalar(select(func.count()).select_from(ReviewItem))
        print(f"launch job: {population:,} review items in {launched['seconds']:.1f} s "
              f"(freeze {launched['phases'].get('start', 0):.1f} s, items {launched['phases'].get('items', 0):.1f} s, "
              f"open {launched['phases'].get('finish', 0):.2f} s); longest step {launched['longest'][0]:.2f} s "
              f"({launched['longest'][1]}); peak resident memory {launched['mb']:.0f} MB (before: {before:.0f} MB)")
        ids = list(session.scalars(select(ReviewItem.id).order_by(ReviewItem.id).limit(1000)))
        reviewer, reviewer_items = session.execute(
            select(ReviewItem.reviewer, func.count()).group_by(ReviewItem.reviewer)
            .order_by(func.count().desc()).limit(1)).one()
        session.close()
        with own_unit_of_work(sessions, ctx) as (session, _):
            reviewer_token, _ = create_token(session, ctx, SECRET, reviewer)
        engine.refresh()

    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    t0 = time.perf_counter()
    response = client.post(f"/v1/campaigns/{campaign_id}/decisions", headers=headers,
                           json={"decisions": [{"item": i, "decision": "keep"} for i in ids]})
    assert response.status_code == 200, response.get_json()
    print(f"1,000 bulk decisions (one request, as a security lead's override): {time.perf_counter() - t0:.2f} s")
    lead_pages, reviewer_pages = app.test_client(), app.test_client()
    lead_pages.post("/ui/sign-in/token", data={"token": token})
    reviewer_pages.post("/ui/sign-in/token", data={"token": reviewer_token})
    for pages, what, url_ in (
            (lead_pages, "the campaign page (its measures count all items)", f"/ui/campaigns/{campaign_id}"),
            (reviewer_pages, f"the queue page of the busiest reviewer ({reviewer_items:,} items, 100 a page)",
             f"/ui/reviews?campaign={campaign_id}"),
            (reviewer_pages, "the same reviewer's \"My reviews\" (every campaign)", "/ui/reviews"),
            (reviewer_pages, "the same queue, page 500 of those recommended revoke",
             f"/ui/reviews?campaign={campaign_id}&recommendation=revoke&page=500"),
            (reviewer_pages, "the same queue searched by person", f"/ui/reviews?campaign={campaign_id}&person=user:u1234"),
            (lead_pages, "an item page", f"/ui/review-items/{ids[-1]}")):
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            assert pages.get(url_).status_code == 200
            times.append(time.perf_counter() - t0)
        print(f"web: {what}: median {statistics.median(times) * 1000:.0f} ms of 5")
    if args.pages_only:
        return

    with app.app_context():
        closing = client.post(f"/v1/campaigns/{campaign_id}/close", headers=headers)
        assert closing.status_code == 202, closing.get_json()
        results["close"] = closed = run_job(app, closing.get_json()["job"]["id"])
        print(f"close job: {population - 1000:,} undecided items revoked in {closed['seconds']:.1f} s; longest step "
              f"{closed['longest'][0]:.2f} s")
        signing = client.post(f"/v1/campaigns/{campaign_id}/sign-off", headers=headers,
                              json={"statement": "benchmark"})
        assert signing.status_code == 202, signing.get_json()
        results["remediation"] = remediated = run_job(app, signing.get_json()["job"]["id"])
        phases = remediated["phases"]
        session = sessions()
        verified = session.scalar(select(func.count()).select_from(ReviewItem).where(
            ReviewItem.remediation_state == "verified"))
        session.close()
        print(f"sign-off job: {remediated['seconds']:.1f} s in all: sign-off report "
              f"{phases.get('start', 0) + phases.get('report_sign_off', 0):.1f} s, {verified:,} revocations applied "
              f"{phases.get('apply', 0):.1f} s and verified {phases.get('verify', 0):.1f} s, scope after "
              f"{phases.get('scope', 0):.1f} s, post-remediation report {phases.get('report_remediation', 0):.1f} s; "
              f"longest step {remediated['longest'][0]:.2f} s ({remediated['longest'][1]}); peak resident memory "
              f"{remediated['mb']:.0f} MB")
        cpu, longest_step = remediated["cpu"], remediated["longest_by_phase"]
        print("  of which this process's CPU: " + ", ".join(
            f"{phase} {cpu.get(phase, 0):.1f} s (longest step {longest_step.get(phase, 0):.2f} s)"
            for phase in ("apply", "verify")) + "; the rest is waiting, mostly on the database")
        print("  peak resident memory by phase: " + ", ".join(
            f"{phase} {mb:.0f} MB" for phase, mb in remediated["peak_by_phase"].items()))
    remediation_only = phases.get("apply", 0) + phases.get("verify", 0) + phases.get("scope", 0)
    report = max(phases.get("start", 0) + phases.get("report_sign_off", 0), phases.get("report_remediation", 0))
    print("\ntargets (issue 17, 200,000 items):")
    for what, figure in (("launch", launched["seconds"]), ("remediation: apply and verify", remediation_only),
                         ("a signed campaign report", report)):
        print(f"  {what}: {figure:.1f} s (target < {TARGET_SECONDS} s): {'met' if figure < TARGET_SECONDS else 'NOT met'}")
    peak = rss_mb()
    print(f"  peak resident memory: {peak:.0f} MB (target < {TARGET_MB} MB): {'met' if peak < TARGET_MB else 'NOT met'}")
    if PROFILE["profiler"]:
        PROFILE["profiler"].dump_stats(workdir / "profile.pstats")
        pstats.Stats(PROFILE["profiler"]).sort_stats("tottime").print_stats(30)
        print(f"the whole profile: {workdir / 'profile.pstats'}")


if __name__ == "__main__":
    main()
