"""Report benchmark: the signed workbooks of a 200,000-item campaign, on SQLite or PostgreSQL.

    .venv/bin/python bench/report.py
    .venv/bin/python bench/report.py --database-url postgresql+psycopg://postgres@127.0.0.1/arbench  # emptied

Builds bench/campaign.py's directory (200,000 grants), launches and closes a campaign over all of it
through their jobs (the no-response rule follows the recommendations), signs it off and runs the
remediation job's phases (its revocations applied and verified, the scope after). Then makes the
job's two workbooks, each in a fresh process, and prints its time, its rows per second and that process's
peak resident memory: the post-remediation workbook with its listings (remaining access, and the
access left in scope after remediation), then the sign-off workbook. Targets: under 30 s and 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from authorize import NOW, SECRET, build_directory  # noqa: E402

from campaign import empty_postgres  # noqa: E402

from accessreview import create_app  # noqa: E402
from accessreview.audit import WriteContext  # noqa: E402
from accessreview.campaigns import definitions, flows, remediation  # noqa: E402
from accessreview.campaigns.review import get_campaign  # noqa: E402
from accessreview.campaigns.schemas import DefinitionBody  # noqa: E402
from accessreview.jobs import runner  # noqa: E402
from accessreview.work import own_unit_of_work  # noqa: E402


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss would include the parent's, across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def app_for(url: str, workdir: Path):
    return create_app({"DATABASE_URL": url, "SECRET_KEY": SECRET, "INSTANCE_DIR": str(workdir),
                       "REPORTS_DIR": str(workdir), "REFRESH_INTERVAL": 0, "DECISION_FLUSH_INTERVAL": 0,
                       "LOG_LEVEL": "WARNING", "STALE_SYNC_ACTION": "flag", "JOB_INLINE_SECONDS": 0})


def prepare(url: str, workdir: Path, grants: int) -> int:
    build_directory(url, random.Random(7), grant_count=grants)
    app = app_for(url, workdir)
    engine = app.extensions["authz"]
    ctx = WriteContext("bench", NOW)
    with app.app_context():
        with own_unit_of_work(app.extensions["db"].sessionmaker, ctx) as (session, ctx):
            created = definitions.create_definition(session, ctx, DefinitionBody.model_validate({
                "name": "Everything", "reviewer": {"rule": "resource_owner"}, "fallback_reviewer": "service:portal",
                "duration_days": 14, "on_no_response": "recommendation"}),
                set(engine.policy.declarations.resource_types))
        launched = flows.launch(app, ctx, created["id"])
        assert runner(app).run(launched.job["id"]) == "done"
        campaign_id = _campaign_of(app)
        closing = flows.close(app, ctx, campaign_id)
        if not closing.done:
            assert runner(app).run(closing.job["id"]) == "done"
        t0 = time.perf_counter()
        sessions = app.extensions["db"].sessionmaker
        with own_unit_of_work(sessions, WriteContext("user:lead", NOW)) as (session, ctx):
            _, job = remediation.sign_off(session, ctx, get_campaign(session, campaign_id), "bench")
            # The job's remediation phases run here; its two workbooks are made below, each in a fresh process.
            job.phase, job.cursor, job_id = "apply", {**job.cursor, "last": 0}, job.id
        steps = runner(app)
        while _phase(sessions, job_id) != "report_remediation":
            assert steps.step(job_id) not in ("failed", None)
        print(f"signed off; revocations applied and verified, and the scope after taken, in "
              f"{time.perf_counter() - t0:.1f} s; items: {_counts(app, campaign_id)}", flush=True)
        return campaign_id


def _phase(sessions, job_id: int) -> str:
    from accessreview.models import Job

    session = sessions()
    try:
        return session.get(Job, job_id).phase
    finally:
        session.close()


def _counts(app, campaign_id: int) -> str:
    from sqlalchemy import func, select

    from accessreview.models import ReviewItem

    session = app.extensions["db"].sessionmaker()
    try:
        found = session.execute(select(ReviewItem.decision, ReviewItem.remediation_state, func.count())
                                .where(ReviewItem.campaign_id == campaign_id)
                                .group_by(ReviewItem.decision, ReviewItem.remediation_state)).all()
        return ", ".join(f"{decision} {state or '-'}: {count:,}" for decision, state, count in sorted(found))
    finally:
        session.close()


def _campaign_of(app) -> int:
    from sqlalchemy import select

    from accessreview.models import Campaign

    session = app.extensions["db"].sessionmaker()
    try:
        return session.scalar(select(Campaign.id))
    finally:
        session.close()


def export(url: str, workdir: Path, campaign_id: int, stage: str) -> None:
    from accessreview.reports import get_signer
    from accessreview.reports.service import campaign_report

    app = app_for(url, workdir)
    with app.app_context():
        session = app.extensions["db"].session()
        started, cpu = time.perf_counter(), time.process_time()
        loaded_mb = peak_mb()
        state = campaign_report(session, WriteContext("system:accessreview", NOW), get_signer(), workdir,
                                get_campaign(session, campaign_id), stage)
        session.commit()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_mb": peak_mb(), "loaded_mb": loaded_mb, "size_mb": state["size"] / 1e6,
                      "file": state["file_name"], "rows": _rows(workdir / state["file_name"])}))


def _rows(path: Path) -> dict[str, int]:
    """Rows per sheet, read off the end of each sheet's XML (its last row number)."""
    import re
    import zipfile

    with zipfile.ZipFile(path) as package:
        names = re.findall(rb'<sheet [^>]*name="([^"]*)"', package.read("xl/workbook.xml"))
        counts = {}
        for number, name in enumerate(names, start=1):
            part = f"xl/worksheets/sheet{number}.xml"
            with package.open(part) as sheet:
                sheet.seek(max(0, package.getinfo(part).file_size - 400_000))
                found = re.findall(rb'<row r="(\d+)"', sheet.read())
            counts[name.decode()] = int(found[-1]) - 1 if found else 0
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a PostgreSQL URL (the database is emptied first); default: a new "
                                               "SQLite file")
    parser.add_argument("--grants", type=int, default=200_000,
                        help="the directory's grants (default 200,000: 200,052 review items); fewer for a quick look")
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--export", nargs=4, metavar=("URL", "DIR", "CAMPAIGN", "STAGE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        print(peak_mb())
        return
    if args.export:
        url, folder, campaign, stage = args.export
        export(url, Path(folder), int(campaign), stage)
        return
    workdir = Path(tempfile.mkdtemp(prefix="accessreview-bench-report-"))
    url = args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}"
    if args.database_url:
        empty_postgres(url)
    t0 = time.perf_counter()
    campaign_id = prepare(url, workdir, args.grants)
    print(f"campaign {campaign_id} signed off and remediated in {time.perf_counter() - t0:.1f} s; again: "
          f"--export {url} {workdir} {campaign_id} STAGE", flush=True)
    baseline = subprocess.run([sys.executable, __file__, "--baseline"], capture_output=True, text=True, check=True,
                              cwd=ROOT)
    print(f"the same imports alone: {float(baseline.stdout):.0f} MB", flush=True)
    for stage in ("remediation", "sign_off"):
        result = subprocess.run([sys.executable, __file__, "--export", url, str(workdir), str(campaign_id), stage],
                                capture_output=True, text=True, check=True, cwd=ROOT)
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        rows = figures["rows"]
        print(f"{stage} workbook: {figures['seconds']:.1f} s ({figures['cpu_seconds']:.1f} s of CPU; "
              f"{sum(rows.values()) / figures['seconds']:,.0f} sheet rows/s), {figures['size_mb']:.1f} MB file, "
              f"peak resident memory {figures['peak_mb']:.0f} MB ({figures['loaded_mb']:.0f} MB before the workbook "
              f"began); "
              f"rows: {json.dumps(rows)}  (targets: < 30 s, < 300 MB); load average after: "
              f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


if __name__ == "__main__":
    main()
