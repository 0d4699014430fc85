"""The ``accessreview`` command: Flask's CLI group bound to the app factory, plus the service's commands."""

from __future__ import annotations

import getpass
import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import create_app, tokens
from .audit import WriteContext, verify_chain
from .work import own_unit_of_work
from .authz.engine import SERVICE_RESOURCE, get_engine, record_policy_load
from .authz.policy import PolicyLoadError
from .config import ConfigError
from .db import get_db
from .directory import service
from .directory.schemas import GrantBody, ImportPayload, PrincipalBody, ResourceBody
from .errors import ApiError
from .jobs import job_error, job_state, run_in_background, runner
from .migrate import upgrade
from .models import Job, Resource
from .validation import nul_at, parse_json


def cli_actor() -> str:
    return f"cli:{getpass.getuser()}"


@contextmanager
def cli_unit_of_work() -> Iterator[tuple[Session, WriteContext]]:
    ctx = WriteContext(actor=cli_actor(), now=current_app.config["CLOCK"].now())
    with own_unit_of_work(get_db().sessionmaker, ctx, get_engine()) as unit:
        yield unit


@contextmanager
def cli_read_session() -> Iterator[Session]:
    session = get_db().session()
    try:
        yield session
    finally:
        session.close()


def fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def report_api_error(error: ApiError, origins: dict[str, list[str]] | None = None) -> None:
    """Print the error, and each row error with the file line it came from when known."""
    click.echo(f"error: {error.message}", err=True)
    for row in error.details.get("errors", [])[:200]:
        where = f"{row['section']}[{row['index']}]" if "section" in row else ""
        field = f".{row['field']}" if row.get("field") else ""
        lines = (origins or {}).get(row.get("section", ""), [])
        origin = f" ({lines[row['index']]})" if "index" in row and row["index"] < len(lines) else ""
        click.echo(f"  {where}{field}{origin}: {row['message']}", err=True)
    sys.exit(1)


def ensure_service_resource(session: Session, ctx: WriteContext) -> None:
    """The service itself is a resource (``system:accessreview``) so that its roles can be granted."""
    if session.get(Resource, SERVICE_RESOURCE) is None:
        service.put_resource(session, ctx, get_engine().policy.declarations, SERVICE_RESOURCE,
                             ResourceBody(name="accessreview"))


# -- db --------------------------------------------------------------------------------------------

@click.group("db", help="Database schema.")
def db_group() -> None:
    pass


@db_group.command("upgrade", help="Apply the migrations, then make sure system:accessreview exists.")
@with_appcontext
def db_upgrade() -> None:
    upgrade(current_app.config["DATABASE_URL"])
    with cli_unit_of_work() as (session, ctx):
        record_policy_load(session, ctx, get_engine().policy)
        ensure_service_resource(session, ctx)
    click.echo("database is at the latest migration")


# -- tokens ----------------------------------------------------------------------------------------

@click.group("token", help="Bearer tokens for callers of the service.")
def token_group() -> None:
    pass


@token_group.command("create", help="Create a token and print it once (only its hash is kept).")
@click.option("--principal", required=True, help="who the token acts as, e.g. service:portal")
@click.option("--expires-in", default=None, help="lifetime such as 90d, 12h, 30m, 2w (default: no expiry)")
@click.option("--description", default=None)
@with_appcontext
def token_create(principal: str, expires_in: str | None, description: str | None) -> None:
    try:
        data = parse_json(tokens.TokenRequest, json.dumps({"principal": principal, "expires_in": expires_in,
                                                           "description": description}))
        with cli_unit_of_work() as (session, ctx):
            token, _state = tokens.create_token(session, ctx, current_app.config["SECRET_KEY"], data.principal,
                                                data.lifetime(), data.description)
    except ApiError as error:
        report_api_error(error)
    click.echo(token)


@token_group.command("revoke", help="Revoke a token by its id (see `token list`).")
@click.argument("token_id")
@with_appcontext
def token_revoke(token_id: str) -> None:
    try:
        with cli_unit_of_work() as (session, ctx):
            tokens.revoke_token(session, ctx, token_id)
    except ApiError as error:
        report_api_error(error)
    click.echo(f"revoked {token_id}")


@token_group.command("list", help="List tokens (never their secrets).")
@click.option("--principal", default=None)
@with_appcontext
def token_list(principal: str | None) -> None:
    with cli_read_session() as session:
        rows = tokens.list_tokens(session, principal)
    click.echo(f"{'ID':<14} {'PRINCIPAL':<28} {'CREATED':<26} {'EXPIRES':<26} {'REVOKED':<26} DESCRIPTION")
    for row in rows:
        click.echo(f"{row['id']:<14} {row['principal']:<28} {row['created_at']:<26} {row['expires_at'] or '-':<26} "
                   f"{row['revoked_at'] or '-':<26} {row['description'] or ''}")


# -- directory -------------------------------------------------------------------------------------

@click.command("grant", help="Grant a role on a resource to a principal, from the shell.")
@click.option("--principal", required=True)
@click.option("--role", required=True)
@click.option("--resource", required=True, help="type:id, e.g. system:accessreview")
@click.option("--reason", default=None)
@click.option("--expires-at", default=None, help="ISO 8601 date-time")
@with_appcontext
def grant_command(principal: str, role: str, resource: str, reason: str | None, expires_at: str | None) -> None:
    try:
        body = GrantBody.model_validate_json(json.dumps({
            "principal": principal, "role": role, "resource": resource, "reason": reason,
            "expires_at": expires_at, "source": "manual"}))
        with cli_unit_of_work() as (session, ctx):
            if resource == SERVICE_RESOURCE:
                ensure_service_resource(session, ctx)
            grant, revision = service.create_grant(session, ctx, get_engine().policy.declarations, body)
    except ValidationError as exc:
        fail(exc.errors()[0]["msg"] + f" ({'.'.join(map(str, exc.errors()[0]['loc']))})")
    except ApiError as error:
        report_api_error(error)
    click.echo(f"grant {grant['id']}: {principal} {role} on {resource} (revision {revision})")


@click.group("principal", help="Principals in the directory.")
def principal_group() -> None:
    pass


@principal_group.command("put", help="Create or replace a principal, e.g. the first admin user.")
@click.argument("key")
@click.option("--name", default=None)
@click.option("--email", default=None)
@click.option("--department", default=None)
@click.option("--attribute", "attributes", multiple=True, metavar="KEY=VALUE",
              help="A custom attribute (text), for attribute rules; repeat for several.")
@with_appcontext
def principal_put(key: str, name: str | None, email: str | None, department: str | None,
                  attributes: tuple[str, ...]) -> None:
    fields: dict = {k: v for k, v in {"name": name, "email": email, "department": department}.items() if v}
    if attributes:
        if any("=" not in pair for pair in attributes):
            fail("--attribute takes KEY=VALUE")
        fields["attributes"] = dict(pair.split("=", 1) for pair in attributes)
    try:
        body = PrincipalBody.model_validate_json(json.dumps(fields))
        with cli_unit_of_work() as (session, ctx):
            _state, revision, created = service.put_principal(
                session, ctx, get_engine().policy.declarations, key, body)
    except ValidationError as exc:
        fail(exc.errors()[0]["msg"])
    except ApiError as error:
        report_api_error(error)
    click.echo(f"{'created' if created else 'updated'} {key} (revision {revision})")


@click.group("directory", help="Bulk directory sync.")
def directory_group() -> None:
    pass


@directory_group.command("import", help="Import principals, resources and grants from JSON, CSV or XLSX files "
                                         "(all files make one import: every row is checked before any is written).")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--section", type=click.Choice(["principals", "resources", "grants"]), default=None,
              help="section of a CSV file whose name does not say it")
@click.option("--source", default=None, help="whose data this is (default: import, or the JSON file's)")
@click.option("--mode", type=click.Choice(["merge", "replace"]), default=None)
@click.option("--dry-run", is_flag=True, help="show the diff, write nothing")
@click.option("--allow-empty-replace", is_flag=True, help="let a replace without grants remove all of the source's")
@click.option("--no-wait", is_flag=True, help="a large import: answer with its job at once, for the worker to run")
@with_appcontext
def directory_import(files: tuple[Path, ...], section: str | None, source: str | None, mode: str | None,
                     dry_run: bool, allow_empty_replace: bool, no_wait: bool) -> None:
    from .directory.files import ImportFileError, ImportLimits, read_import_files_with_origins

    config = current_app.config
    try:
        payload, origins = read_import_files_with_origins(list(files), section, ImportLimits(
            max_bytes=config["IMPORT_MAX_BYTES"], max_cells=config["IMPORT_MAX_CELLS"]))
    except ImportFileError as exc:  # ImportTooLarge too: its message names the setting
        fail(f"{exc}; nothing was written")
    nul = nul_at(payload)
    if nul is not None:
        where = origins.get(str(nul[0]), [])[nul[1]] if len(nul) > 1 and isinstance(nul[1], int) else ""
        fail(f"{'.'.join(map(str, nul))}{f' ({where})' if where else ''}: contains a NUL character (\\x00), "
             "which no text here may hold; nothing was written")
    payload.update({k: v for k, v in {"source": source, "mode": mode}.items() if v})
    if dry_run:
        payload["dry_run"] = True
    if payload.get("mode") == "replace" and not payload.get("grants") and not allow_empty_replace:
        fail("a replace with no grants would remove every grant of the source; "
             "pass --allow-empty-replace if that is meant")
    try:
        parsed = ImportPayload.model_validate_json(json.dumps(payload))
    except ValidationError as exc:
        click.echo(f"error: {len(exc.errors())} invalid value(s); nothing was written", err=True)
        for error in exc.errors()[:200]:
            loc = error["loc"]
            where = origins.get(str(loc[0]), [])[loc[1]] if len(loc) > 1 and isinstance(loc[1], int) else ""
            click.echo(f"  {'.'.join(map(str, loc))}{f' ({where})' if where else ''}: {error['msg']}", err=True)
        sys.exit(1)
    try:
        result = _import(parsed, wait=not no_wait)
    except ApiError as error:
        report_api_error(error, origins)
    if "job" in result and "counts" not in result:
        click.echo(json.dumps(result["job"], indent=2))
        return
    click.echo(json.dumps({k: result[k] for k in ("dry_run", "mode", "source", "revision", "counts")}, indent=2))


def _import(payload: ImportPayload, *, wait: bool = True) -> dict[str, Any]:
    """The import flow, run to its end here unless ``wait`` is off (then: the job, for the worker)."""
    from .directory.imports import import_result, run_import

    app = current_app._get_current_object()
    outcome = run_import(app, WriteContext(actor=cli_actor(), now=app.config["CLOCK"].now()), payload)
    if outcome.done:
        return outcome.result
    if not wait:
        return {"job": outcome.job}
    run_in_background(app)
    runner(app).run(outcome.job["id"])
    with cli_read_session() as session:
        job = session.get(Job, outcome.job["id"])
        if job.state == "failed":
            raise job_error(job)
        if job.state != "done":
            fail(f"job {job.id} is held by another runner ({job.lease_owner}); see accessreview jobs wait {job.id}", 3)
        return import_result(job)


# -- audit -----------------------------------------------------------------------------------------

@click.group("audit", help="The audit trail.")
def audit_group() -> None:
    pass


@audit_group.command("verify", help="Walk the hash chain; name the first event edited, removed or reordered.")
@with_appcontext
def audit_verify() -> None:
    with cli_read_session() as session:
        report = verify_chain(session)
    if report.ok:
        click.echo(f"audit chain intact: {report.events} events, head {report.head}")
        return
    fail(f"audit chain broken after {report.events} good events: {report.problem}")


# -- policy ----------------------------------------------------------------------------------------

@click.group("policy", help="The Polar policy.")
def policy_group() -> None:
    pass


@policy_group.command("reload", help="Validate the policy files and make every service process load them.")
@with_appcontext
def policy_reload() -> None:
    engine = get_engine()
    try:
        with cli_unit_of_work() as (session, ctx):
            policy = engine.reload_policy(session, ctx)
    except PolicyLoadError as exc:
        fail(f"the policy does not load; the current one stays: {exc}")
    click.echo(f"policy {policy.version} recorded; every process loads it within "
               f"{current_app.config['REFRESH_INTERVAL']}s")


@policy_group.command("test", help="Run the policy's own tests (policies/tests).", context_settings={
    "ignore_unknown_options": True})
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
@with_appcontext
def policy_test(pytest_args: tuple[str, ...]) -> None:
    import pytest

    tests = Path(current_app.config["POLICY_DIR"]) / "tests"
    sys.exit(pytest.main([str(tests), "-q", "-p", "no:cacheprovider", *pytest_args]))


# -- scheduler -------------------------------------------------------------------------------------

@click.command("scheduler", help="Run the scheduler: launches due campaigns, reminds, escalates and closes.")
@click.option("--once", is_flag=True, help="run every job once and exit (for cron, or to catch up by hand)")
@with_appcontext
def scheduler_command(once: bool) -> None:
    from . import scheduler

    app = current_app._get_current_object()
    if once:
        click.echo(json.dumps(scheduler.run_once(app), default=str))
        return
    click.echo(f"scheduler running: every {app.config['SCHEDULER_TICK']} s (Ctrl-C stops it)")
    scheduler.build(app).start()


# -- worker and jobs --------------------------------------------------------------------------------

@click.command("worker", help="Run durable jobs (launch, close, remediation, reports) and send the outbox's mail.")
@click.option("--once", is_flag=True, help="run until no job and no due message is left, then exit")
@with_appcontext
def worker_command(once: bool) -> None:
    import signal
    import threading

    from . import worker

    app = current_app._get_current_object()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if not once:
        click.echo(f"worker running as {runner(app).name} (Ctrl-C stops it)")
    outcome = worker.run(app, stop, once=once)
    if once:
        click.echo(json.dumps(outcome))


@click.group("jobs", help="Durable jobs: list them, run one here, wait for one.")
def jobs_group() -> None:
    pass


@jobs_group.command("list", help="Jobs, newest first.")
@click.option("--state", type=click.Choice(["queued", "running", "done", "failed"]), default=None)
@click.option("--limit", type=int, default=50)
@with_appcontext
def jobs_list(state: str | None, limit: int) -> None:
    with cli_read_session() as session:
        query = select(Job).order_by(Job.id.desc()).limit(limit)
        if state:
            query = query.where(Job.state == state)
        for job in session.scalars(query):
            total = f"/{job.progress_total}" if job.progress_total is not None else ""
            click.echo(f"{job.id}\t{job.kind}\t{job.subject or '-'}\t{job.state}\t{job.phase}\t"
                       f"{job.progress_done}{total}\t{job.error or ''}")


@jobs_group.command("run", help="Run a job's remaining steps in this process (another runner's live lease is respected).")
@click.argument("job_id", type=int)
@with_appcontext
def jobs_run(job_id: int) -> None:
    app = current_app._get_current_object()
    run_in_background(app)
    _print_job(job_id, runner(app).run(job_id))


@jobs_group.command("wait", help="Wait until a job ends; exit 1 if it failed, 2 on --timeout.")
@click.argument("job_id", type=int)
@click.option("--timeout", type=float, default=None, help="seconds to wait at most")
@with_appcontext
def jobs_wait(job_id: int, timeout: float | None) -> None:
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        with cli_read_session() as session:
            job = session.get(Job, job_id)
            if job is None:
                fail(f"job {job_id} does not exist")
            if job.state in ("done", "failed"):
                break
        if deadline is not None and time.monotonic() > deadline:
            fail(f"job {job_id} is still {job.state} ({job.phase}, {job.progress_done}/{job.progress_total})", 2)
        time.sleep(0.5)
    _print_job(job_id, job.state)


def _print_job(job_id: int, state: str | None) -> None:
    with cli_read_session() as session:
        job = session.get(Job, job_id)
        if job is None:
            fail(f"job {job_id} does not exist")
        click.echo(json.dumps(job_state(job), indent=2))
        if job.state == "failed":
            sys.exit(1)
        if state is None and job.state != "done":
            fail(f"job {job_id} is held by another runner ({job.lease_owner}) until {job.lease_until}", 3)


# -- campaigns ---------------------------------------------------------------------------------------

@click.group("campaign", help="Campaign steps that start long work (the same flows as the API and the pages).")
@click.option("--no-wait", is_flag=True, help="answer with the job at once instead of running it to its end here")
@click.pass_context
def campaign_group(context: click.Context, no_wait: bool) -> None:
    context.obj = {"wait": not no_wait}


def _run_flow(start) -> None:
    app = current_app._get_current_object()
    ctx = WriteContext(actor=cli_actor(), now=app.config["CLOCK"].now())
    try:
        outcome = start(app, ctx)
        job_id = outcome.job["id"] if outcome.job else None
        if job_id is not None and not outcome.done and click.get_current_context().obj["wait"]:
            run_in_background(app)
            runner(app).run(job_id)
            with cli_read_session() as session:
                job = session.get(Job, job_id)
                if job.state == "failed":
                    raise job_error(job)
    except ApiError as error:
        report_api_error(error)
    if job_id is None:
        click.echo(json.dumps(outcome.state, indent=2, default=str))
    else:
        _print_job(job_id, "running")


@campaign_group.command("launch", help="Launch a campaign of definition DEFINITION_ID now.")
@click.argument("definition_id", type=int)
@with_appcontext
def campaign_launch(definition_id: int) -> None:
    from .campaigns import flows

    _run_flow(lambda app, ctx: flows.launch(app, ctx, definition_id))


@campaign_group.command("close", help="Close a campaign now (undecided items get its no-response outcome).")
@click.argument("campaign_id", type=int)
@click.option("--dry-run", is_flag=True, help="print what closing would do, per rule and item; change nothing")
@with_appcontext
def campaign_close(campaign_id: int, dry_run: bool) -> None:
    from .campaigns import flows, review

    if not dry_run:
        _run_flow(lambda app, ctx: flows.close(app, ctx, campaign_id))
        return
    with cli_read_session() as session:
        try:
            campaign = review.get_campaign(session, campaign_id)
            preview = review.close_preview(session, campaign, None, 1000)
            cursor = preview.pop("next_cursor")
            while cursor:  # every item, a page at a time
                following = review.close_preview(session, campaign, cursor, 1000)
                preview["items"] += following["items"]
                cursor = following["next_cursor"]
        except ApiError as error:
            report_api_error(error)
    click.echo(json.dumps(preview, indent=2, default=str))


@campaign_group.command("sign-off", help="Sign a closed campaign off; its reports and revocations follow.")
@click.argument("campaign_id", type=int)
@click.option("--statement", required=True, help="the attestation, as on the page")
@with_appcontext
def campaign_sign_off(campaign_id: int, statement: str) -> None:
    from .campaigns import flows
    from .campaigns.schemas import SignOffBody

    _run_flow(lambda app, ctx: flows.sign_off(
        app, ctx, campaign_id, parse_json(SignOffBody, json.dumps({"statement": statement})).statement))


@campaign_group.command("remediate", help="Apply (or retry) a signed-off campaign's revocations and verify them.")
@click.argument("campaign_id", type=int)
@with_appcontext
def campaign_remediate(campaign_id: int) -> None:
    from .campaigns import flows

    _run_flow(lambda app, ctx: flows.remediate(app, ctx, campaign_id))


@campaign_group.command("follow-up", help="Check now whether a remediated campaign's revoked access came back.")
@click.argument("campaign_id", type=int)
@with_appcontext
def campaign_follow_up(campaign_id: int) -> None:
    from .campaigns import flows

    _run_flow(lambda app, ctx: flows.follow_up(app, ctx, campaign_id))


@click.group("holds", help="Revocation holds: what access reviews revoked, held against syncs and writes.")
def holds_group() -> None:
    pass


@holds_group.command("list", help="Holds (active ones unless --all), oldest first.")
@click.option("--all", "everything", is_flag=True, help="lifted and expired ones too")
@click.option("--campaign", type=int, default=None)
@with_appcontext
def holds_list(everything: bool, campaign: int | None) -> None:
    from .directory import holds

    now = current_app.config["CLOCK"].now()
    with cli_read_session() as session:
        cursor = None
        while True:
            page = holds.list_holds(session, now, state=None if everything else "active", campaign=campaign,
                                    principal=None, cursor=cursor, limit=500)
            for hold in page.items:
                state = "active" if hold["active"] else ("lifted" if hold["lifted"] else "expired")
                click.echo(f"{hold['id']}\t{state}\t{hold['principal']}\t{hold['role']}\t{hold['resource']}\t"
                           f"campaign {hold['campaign']} item {hold['item']}\t{hold['expires_at'] or 'until lifted'}")
            if not page.next_cursor:
                break
            cursor = page.next_cursor


@holds_group.command("lift", help="Lift a hold: the next sync may restore the grant.")
@click.argument("hold_id", type=int)
@click.option("--justification", required=True, help="why (kept on the audit trail)")
@click.option("--until", default=None, help="the lift lapses then (ISO 8601), and the hold stands again")
@with_appcontext
def holds_lift(hold_id: int, justification: str, until: str | None) -> None:
    from .directory import holds
    from .directory.schemas import LiftBody

    try:
        data = LiftBody.model_validate({"justification": justification, **({"until": until} if until else {})})
        with cli_unit_of_work() as (session, ctx):
            state = holds.lift(session, ctx, hold_id, data.justification, data.until)
    except ValidationError as exc:
        fail(exc.errors()[0]["msg"])
    except ApiError as error:
        report_api_error(error)
    click.echo(json.dumps(state, indent=2))


# -- demo ------------------------------------------------------------------------------------------

@click.group("demo", help="Demo data.")
def demo_group() -> None:
    pass


@demo_group.command("load", help="Load a realistic client-portal directory (merge; safe to repeat).")
@click.option("--if-empty", is_flag=True, help="do nothing when the directory already has grants")
@with_appcontext
def demo_load(if_empty: bool) -> None:
    from .demo import build_demo_payload
    from .demo_review import define_demo_review, launch_demo_review
    from .models import Grant

    with cli_unit_of_work() as (session, ctx):
        if if_empty and session.scalar(select(Grant.id).limit(1)) is not None:
            click.echo("directory already has grants; demo not loaded")
            return
        ensure_service_resource(session, ctx)
        payload = ImportPayload.model_validate_json(json.dumps(build_demo_payload(ctx.now)))
    result = _import(payload)
    added = {section: counts["added"] for section, counts in result["counts"].items()}
    click.echo(f"demo directory loaded at revision {result['revision']}: {added}")
    with cli_unit_of_work() as (session, ctx):
        definition_id = define_demo_review(session, ctx, get_engine())
    if definition_id is not None:
        review = launch_demo_review(current_app._get_current_object(), ctx, definition_id)
        click.echo(f"demo access review launched: campaign {review.campaign_id}, {review.items} items; "
                   f"{review.reviewer} has {review.reviewer_items} to decide (web sign-in by e-mail: "
                   f"{review.reviewer_email})")


def init_app(app: Flask) -> None:
    for command in (db_group, token_group, grant_command, principal_group, directory_group, audit_group,
                    policy_group, scheduler_command, worker_command, jobs_group, campaign_group, holds_group,
                    demo_group):
        app.cli.add_command(command)


cli = FlaskGroup(create_app=lambda: create_app(), add_version_option=False,
                 help="accessreview: permissions and access reviews for the client portal.")


@click.group("report", help="Signed reports.")
def report_group() -> None:
    pass


@report_group.command("verify", help="Verify a report offline against a key you trust: exit 0 valid, 1 not valid, "
                                     "3 consistent but the key is untrusted (no --public-key or --fingerprint).")
@click.argument("workbook", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--signature", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="the signature file (default: WORKBOOK.sig.json beside it)")
@click.option("--raw-signature", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="the raw 64-byte signature (default: WORKBOOK.sig beside it, checked when present)")
@click.option("--public-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="trust this public key (PEM, from GET /v1/signing-keys; check its fingerprint)")
@click.option("--fingerprint", default=None,
              help="trust the key with this SHA-256 fingerprint (64 hex digits), as the operator published it")
def report_verify(workbook: Path, signature: Path | None, raw_signature: Path | None, public_key: Path | None,
                  fingerprint: str | None) -> None:
    from .reports.verify_report import EXIT_CODES, run

    try:
        result, line = run(workbook, signature=signature, raw_signature=raw_signature, public_key=public_key,
                           fingerprint_hex=fingerprint)
    except (ValueError, OSError) as exc:
        fail(str(exc), 2)
    click.echo(line, err=not result.valid)
    sys.exit(EXIT_CODES[result.status])


@click.group("keys", help="The key that signs reports.")
def keys_group() -> None:
    pass


@keys_group.command("fingerprint", help="Print the signing key's SHA-256 fingerprint (and key id) to publish out of "
                                        "band, so that auditors can trust it; or the fingerprint of a public key file.")
@click.option("--public-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="a public key (PEM) to fingerprint instead of the service's signing key (no settings needed)")
@click.option("--pem", is_flag=True, help="print the public key (PEM) as well")
@click.pass_context
def keys_fingerprint(context: click.Context, public_key: Path | None, pem: bool) -> None:
    from .reports.signing import public_pem
    from .reports.verify_report import fingerprint, key_id, load_public_key

    if public_key is not None:
        try:
            key = load_public_key(public_key.read_bytes())
        except ValueError as exc:
            fail(f"{public_key}: {exc}", 2)
    else:
        from flask.cli import ScriptInfo

        from .reports import signer_of

        key = signer_of(context.ensure_object(ScriptInfo).load_app()).private_key.public_key()
    click.echo(f"key id {key_id(key)}\nSHA-256 fingerprint {fingerprint(key)}")
    if pem:
        click.echo(public_pem(key), nl=False)


cli.add_command(report_group)  # on the group itself: verifying needs no app, database or configuration
cli.add_command(keys_group)  # a key file's fingerprint needs no app either; the service's key loads it


def main() -> None:
    try:
        cli.main(prog_name="accessreview")
    except (ConfigError, PolicyLoadError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)



if __name__ == "__main__":
    main()
