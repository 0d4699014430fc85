"""Report benchmark: export a signed workbook of a 200,000-item campaign, on SQLite or PostgreSQL.

    .venv/bin/python bench/report.py
    .venv/bin/python bench/report.py --database-url postgresql+psycopg://postgres@127.0.0.1/arbench  # emptied

Builds bench/campaign.py's campaign (200,000 grants, launched and closed through their jobs), then
makes the signed campaign workbook in a fresh process and prints its time, its rows per second and
that process's peak resident memory.
"""

from __future__ import annotations

import json
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
from accessreview.campaigns import definitions, flows  # noqa: E402
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


def prepare(url: str, workdir: Path) -> int:
    build_directory(url, random.Random(7), grant_count=200_000)
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
        return campaign_id


def _campaign_of(app) -> int:
    from sqlalchemy import select

    from accessreview.models import Campaign

    session = app.extensions["db"].sessionmaker()
    try:
        return session.scalar(select(Campaign.id))
    finally:
        session.close()


def export(url: str, workdir: Path, campaign_id: int) -> None:
    from accessreview.campaigns.review import get_campaign
    from accessreview.reports import get_signer
    from accessreview.reports.service import campaign_report

    app = app_for(url, workdir)
    with app.app_context():
        session = app.extensions["db"].session()
        started = time.perf_counter()
        state = campaign_report(session, WriteContext("bench", NOW), get_signer(), workdir,
                                get_campaign(session, campaign_id), "sign_off")
        session.commit()
        seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb(),
                      "size_mb": state["size"] / 1e6, "file": state["file_name"]}))


def main() -> None:
    if sys.argv[1:] == ["--baseline"]:
        print(peak_mb())
        return
    if len(sys.argv) == 4 and sys.argv[1] == "--export":
        export(sys.argv[2], Path(sys.argv[3]).parent, int(sys.argv[3].rsplit(":", 1)[1]))
        return
    workdir = Path(tempfile.mkdtemp(prefix="accessreview-bench-report-"))
    url = f"sqlite:///{workdir / 'bench.sqlite3'}"
    if sys.argv[1:2] == ["--database-url"]:
        url = sys.argv[2]
        empty_postgres(url)
    t0 = time.perf_counter()
    campaign_id = prepare(url, workdir)
    print(f"campaign {campaign_id}: 200,052 review items ready in {time.perf_counter() - t0:.1f} s")
    baseline = subprocess.run([sys.executable, __file__, "--baseline"], capture_output=True, text=True, check=True,
                              cwd=ROOT)
    result = subprocess.run([sys.executable, __file__, "--export", url, f"{workdir / 'x'}:{campaign_id}"],
                            capture_output=True, text=True, check=True, cwd=ROOT)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"signed workbook of 200,052 items: {figures['seconds']:.1f} s ({200_052 / figures['seconds']:,.0f} rows/s), "
          f"{figures['size_mb']:.1f} MB file; peak resident memory of the exporting process "
          f"{figures['peak_mb']:.0f} MB (the same imports alone: {float(baseline.stdout):.0f} MB)")


if __name__ == "__main__":
    main()
