"""A security lead's pages: campaigns and their progress, who is behind, every item, and the steps
that end a campaign (close, sign off, retry remediation); definitions, to launch, pause or resume,
and a form for new ones. Auditors may look; only those who may manage campaigns see the buttons,
and the policy is asked again on every press."""

from __future__ import annotations

from typing import Any, Literal

from flask import current_app, redirect, render_template, request, url_for
from pydantic import BaseModel
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from .. import jobs
from ..authz.engine import get_engine
from ..campaigns import definitions, flows, review, scheduled
from ..campaigns.deciding import declared_types
from ..campaigns.measures import campaign_measures
from ..campaigns.schemas import DefinitionBody, DefinitionPatch, SignOffBody
from ..db import get_or_404, get_session
from ..directory import holds
from ..directory.planner import directory_types
from ..errors import ApiError
from ..guard import authorize, clock_now, page_limit, unit_of_work, write_context
from ..models import Job, ReviewItem
from ..pagination import Cursor
from ..reports import service as reports
from ..validation import column_text, parse_query
from .blueprint import bp, page_query
from .forms import as_error, beside, problems


class ItemsQuery(BaseModel):
    status: Literal["pending", "decided", "all"] = "all"
    reviewer: column_text(ReviewItem.reviewer) | None = None  # type: ignore[valid-type]  # one reviewer's, to chase
    cursor: Cursor | None = None
    overridden: int | None = None  # the item a security lead just decided in its reviewer's stead
    reminded: column_text(ReviewItem.reviewer) | None = None  # type: ignore[valid-type]  # just reminded


@bp.get("/campaigns")
def campaigns():
    authorize("view_campaigns")
    return _render_campaigns()


def _render_campaigns(error: ApiError | None = None, status: int = 200):
    """Newest campaign first, each with its item counts; then the definitions."""
    session = get_session()
    listed = [{**c, "items": review.item_counts(session, c["id"])} for c in reversed(review.list_campaigns(session))]
    return render_template("campaigns.html", campaigns=listed, definitions=definitions.list_definitions(session),
                           error=error), status


@bp.get("/campaigns/<int:campaign_id>")
def campaign_page(campaign_id: int):
    authorize("view_campaigns")
    return _render_campaign(campaign_id)


def _render_campaign(campaign_id: int, error: ApiError | None = None, statement: str = "", status: int = 200):
    session = get_session()
    campaign = review.get_campaign(session, campaign_id)
    q = page_query(ItemsQuery)
    items = review.list_items(session, campaign=campaign_id, reviewer=q.reviewer,
                              status=None if q.status == "all" else q.status, cursor=q.cursor, limit=page_limit(None))
    return render_template("campaign.html", campaign=review.campaign_state(campaign), now=clock_now(),
                           measures=campaign_measures(session, campaign, clock_now()),
                           reviewers=review.reviewer_progress(session, campaign_id), items=items, query=q,
                           reports=reports.list_reports(session, campaign_id), error=error,
                           statement=statement, jobs=_jobs_at_work(session, campaign_id),
                           holds_active=holds.count_active(session, clock_now(), campaign_id)), status


def _jobs_at_work(session, campaign_id: int) -> list[dict[str, Any]]:
    return [jobs.job_state(job) for job in session.scalars(select(Job).where(
        Job.subject == f"campaign:{campaign_id}", Job.state.in_(("queued", "running"))).order_by(Job.id))]


def _act(campaign_id: int, action) -> object:
    """Start one of the closing steps; a refusal (still open, already signed off) is shown on the page.
    Work that outlasts the request goes on in the worker: the page of its job follows it."""
    actor = authorize("manage_campaigns")
    try:
        outcome = action(write_context(actor))
    except ApiError as error:
        return _render_campaign(campaign_id, error, request.form.get("statement", ""), error.status)
    return _after(outcome, campaign_id)


def _after(outcome: flows.Outcome, campaign_id: int | None):
    if not outcome.done:
        return redirect(url_for("web.job_page", job_id=outcome.job["id"]))
    return redirect(url_for("web.campaign_page", campaign_id=campaign_id or outcome.state["id"]))


@bp.post("/campaigns/<int:campaign_id>/remind")
def remind_reviewer(campaign_id: int):
    """Remind one reviewer now of what they have left (through the outbox, like the scheduled ones)."""
    actor = authorize("manage_campaigns")
    reviewer = request.form.get("reviewer", "").strip()
    try:
        with unit_of_work(actor) as (session, ctx):
            sent = scheduled.remind_now(session, ctx, review.get_campaign(session, campaign_id), current_app.config,
                                        reviewer)
    except ApiError as error:
        return _render_campaign(campaign_id, error, status=error.status)
    return redirect(url_for("web.campaign_page", campaign_id=campaign_id, reminded=sent["reviewer"]) + "#reviewers")


class PreviewQuery(BaseModel):
    cursor: str | None = None


@bp.get("/campaigns/<int:campaign_id>/close")
def close_preview(campaign_id: int):
    """What closing would do, item by item, and the form that confirms it with those counts."""
    authorize("manage_campaigns")
    return _render_close_preview(campaign_id)


def _render_close_preview(campaign_id: int, changed: bool = False, status: int = 200):
    session = get_session()
    campaign = review.get_campaign(session, campaign_id)
    try:
        preview = review.close_preview(session, campaign, page_query(PreviewQuery).cursor, page_limit(None))
    except ApiError as error:
        return _render_campaign(campaign_id, error, status=error.status)
    return render_template("close_confirm.html", campaign=review.campaign_state(campaign), preview=preview,
                           expected=_expected(preview), changed=changed), status


def _expected(preview: dict[str, Any]) -> str:
    """The counts a confirmation was given for: the close goes ahead only if they still hold."""
    return ";".join(f"{r['rule']}={r['keep']}/{r['revoke']}" for r in preview["rules"])


@bp.post("/campaigns/<int:campaign_id>/close")
def close(campaign_id: int):
    """Close once confirmed, for the counts shown; without a confirmation, or when decisions made
    meanwhile changed the counts, show what closing would do (again) instead."""
    authorize("manage_campaigns")
    expected = request.form.get("expected")
    if request.form.get("confirm") != "close" or expected is None:
        return _render_close_preview(campaign_id)
    session = get_session()
    campaign = review.get_campaign(session, campaign_id)
    if campaign.status in ("open", "closing") and \
            _expected(review.close_preview(session, campaign, None, 1)) != expected:
        return _render_close_preview(campaign_id, changed=True, status=409)
    session.rollback()  # end the reads: the close is its own unit of work
    return _act(campaign_id, lambda ctx: flows.close(current_app, ctx, campaign_id))


@bp.post("/campaigns/<int:campaign_id>/sign-off")
def sign_off(campaign_id: int):
    def sign(ctx) -> flows.Outcome:
        statement = parse_query(SignOffBody, {"statement": request.form.get("statement", "").strip()}).statement
        return flows.sign_off(current_app, ctx, campaign_id, statement)

    return _act(campaign_id, sign)


@bp.post("/campaigns/<int:campaign_id>/remediate")
def remediate(campaign_id: int):
    return _act(campaign_id, lambda ctx: flows.remediate(current_app, ctx, campaign_id))


@bp.post("/campaign-definitions/<int:definition_id>/launch")
def launch(definition_id: int):
    """Launch now; first, if open campaigns already review the same grants, say which and ask."""
    actor = authorize("manage_campaigns")
    if request.form.get("confirmed") != "yes":
        session = get_session()
        definition = definitions.get_definition(session, definition_id)
        index = get_engine().snapshot().index
        overlapping = definitions.open_campaigns_over(session, definition,
                                                      lambda key: [node.key for node in index.ancestors(key)])
        if overlapping:
            return render_template("launch_confirm.html", definition=definitions.definition_state(definition),
                                   overlapping=overlapping)
    try:
        outcome = flows.launch(current_app, write_context(actor), definition_id)
    except ApiError as error:
        return _render_campaigns(error, error.status)
    return _after(outcome, None)


@bp.get("/jobs/<int:job_id>")
def job_page(job_id: int):
    """Where a long piece of work stands; the page reloads itself while the job runs. Who may follow the
    job's kind may look, as through the API."""
    found = get_session().get(Job, job_id)
    authorize(jobs.follow_permission(found.kind if found is not None else "launch"))
    job = jobs.job_state(get_or_404(get_session(), Job, job_id, "job"))
    return render_template("job.html", job=job, running=job["state"] in ("queued", "running"))


@bp.post("/campaign-definitions/<int:definition_id>/schedule")
def pause_or_resume(definition_id: int):
    """Pause a definition's schedule (no launches until resumed), or resume it."""
    actor = authorize("manage_campaigns")
    enabled = request.form.get("enabled") == "true"
    try:
        with unit_of_work(actor) as (session, ctx):
            definitions.patch_definition(session, ctx, definition_id, DefinitionPatch(enabled=enabled),
                                         declared_types())
    except ApiError as error:
        return _render_campaigns(error, error.status)
    return redirect(url_for("web.campaigns"))


# -- a new definition ----------------------------------------------------------------------------------

@bp.get("/campaign-definitions/new")
def new_definition():
    authorize("manage_campaigns")
    return _render_definition_form(MultiDict({"duration_days": "14", "days_before_due": "3", "on_due_day": "on",
                                              "daily_overdue": "on", "justify_revoke": "on", "unused_days": "90",
                                              "timezone": "UTC", "schedule": "none",
                                              "principal_kinds": ["user", "group", "service"]}))


@bp.post("/campaign-definitions")
def create_definition():
    actor = authorize("manage_campaigns")
    try:
        data, found = problems(DefinitionBody, definition_from_form(request.form))
        if found:
            raise as_error(found, errors=found)
        with unit_of_work(actor) as (session, ctx):
            definitions.create_definition(session, ctx, data, declared_types())
    except ApiError as error:
        return _render_definition_form(request.form, error, error.status)
    return redirect(url_for("web.campaigns"))


@bp.get("/campaign-definitions/<int:definition_id>")
def definition_page(definition_id: int):
    """A definition as its form, to read (auditors too) and, for those who manage campaigns, to change."""
    authorize("view_campaigns")
    state = definitions.definition_state(definitions.get_definition(get_session(), definition_id))
    return _render_definition_form(form_from_definition(state), definition=state,
                                   saved=request.args.get("saved") == "1")


@bp.post("/campaign-definitions/<int:definition_id>")
def edit_definition(definition_id: int):
    """What the form holds replaces the definition (its holds settings, not on the form, stay)."""
    actor = authorize("manage_campaigns")
    state = definitions.definition_state(definitions.get_definition(get_session(), definition_id))
    body = {"stages": [], "escalation": None, "schedule": None, **definition_from_form(request.form)}
    try:
        data, found = problems(DefinitionPatch, body)
        if found:
            raise as_error(found, errors=found)
        with unit_of_work(actor) as (session, ctx):
            definitions.patch_definition(session, ctx, definition_id, data, declared_types())
    except ApiError as error:
        return _render_definition_form(request.form, error, error.status, definition=state)
    return redirect(url_for("web.definition_page", definition_id=definition_id, saved=1))


def _render_definition_form(form: MultiDict, error: ApiError | None = None, status: int = 200,
                            definition: dict[str, Any] | None = None, saved: bool = False):
    return render_template("definition_form.html", form=form, error=error, found=beside(error),
                           definition=definition, saved=saved,
                           types=directory_types(get_engine().policy.declarations)), status


def form_from_definition(d: dict[str, Any]) -> MultiDict:
    """The form's fields from a definition: what :func:`definition_from_form` reads back."""
    scope, reminders, justification = d["scope"] or {}, d["reminders"] or {}, d["justification"] or {}
    fields: list[tuple[str, Any]] = [
        ("name", d["name"]), ("description", d["description"] or ""),
        ("subtrees", "\n".join(scope.get("subtrees") or [])), ("resources", "\n".join(scope.get("resources") or [])),
        ("roles", " ".join(scope.get("roles") or [])),
        *(("resource_types", t) for t in scope.get("resource_types") or []),
        *(("principal_kinds", k) for k in scope.get("principal_kinds") or []),
        ("reviewer_rule", d["reviewer"]["rule"]), ("reviewer_principal", d["reviewer"].get("principal") or ""),
        ("fallback_reviewer", d["fallback_reviewer"]), ("duration_days", str(d["duration_days"])),
        ("days_before_due", " ".join(str(n) for n in reminders.get("days_before_due") or [])),
        ("on_no_response", d["on_no_response"]), ("on_no_response_fallback", d.get("on_no_response_fallback") or "keep"),
        ("unused_days", str((d["recommendation"] or {}).get("unused_days", ""))),
    ]
    fields += [(name, "on") for name, on in (("on_due_day", reminders.get("on_due_day")),
                                             ("daily_overdue", reminders.get("daily_overdue")),
                                             ("justify_revoke", justification.get("revoke")),
                                             ("justify_keep", justification.get("keep")),
                                             ("justify_keep_against_advice",
                                              justification.get("keep_against_revoke_advice")),
                                             ("refuse_signer_who_decided",
                                              (d.get("sign_off") or {}).get("refuse_signer_who_decided"))) if on]
    if d["stages"]:
        fields += [("stage_rule", d["stages"][0]["rule"]), ("stage_principal", d["stages"][0].get("principal") or "")]
    if d["escalation"]:
        fields += [("escalate_after", str(d["escalation"]["after_days_overdue"])),
                   ("escalate_to", d["escalation"].get("to", "manager"))]
    schedule = d["schedule"] or {}
    kind = "cron" if schedule.get("cron") else "interval_days" if schedule.get("interval_days") else "none"
    fields += [("schedule", kind), ("timezone", schedule.get("timezone") or "UTC")]
    if kind != "none":
        fields.append((kind, str(schedule[kind])))
    return MultiDict(fields)


def _lines(text: str) -> list[str]:
    return [part for part in text.replace(",", " ").split() if part]


def definition_from_form(form: MultiDict) -> dict[str, Any]:
    """The API's definition body from the form's fields, for the same validation (empty fields absent)."""
    def rule(prefix: str) -> dict[str, Any]:
        chosen = {"rule": form.get(f"{prefix}_rule", "")}
        if chosen["rule"] == "principal":
            chosen["principal"] = form.get(f"{prefix}_principal", "").strip() or None
        return chosen

    body: dict[str, Any] = {
        "name": form.get("name", "").strip(),
        "description": form.get("description", "").strip() or None,
        "scope": {"subtrees": _lines(form.get("subtrees", "")), "resources": _lines(form.get("resources", "")),
                  "resource_types": form.getlist("resource_types"), "roles": _lines(form.get("roles", "")),
                  "principal_kinds": form.getlist("principal_kinds")},
        "reviewer": rule("reviewer"),
        "fallback_reviewer": form.get("fallback_reviewer", "").strip(),
        "duration_days": form.get("duration_days", "").strip(),
        "reminders": {"days_before_due": _lines(form.get("days_before_due", "")),
                      "on_due_day": "on_due_day" in form, "daily_overdue": "daily_overdue" in form},
        "justification": {"revoke": "justify_revoke" in form, "keep": "justify_keep" in form,
                          "keep_against_revoke_advice": "justify_keep_against_advice" in form},
        "sign_off": {"refuse_signer_who_decided": "refuse_signer_who_decided" in form},
        "recommendation": {"unused_days": form.get("unused_days", "").strip()},
    }
    if form.get("on_no_response"):
        body["on_no_response"] = form["on_no_response"]
    if form.get("on_no_response_fallback"):
        body["on_no_response_fallback"] = form["on_no_response_fallback"]
    if form.get("stage_rule"):
        body["stages"] = [rule("stage")]
    if form.get("escalate_after", "").strip():
        body["escalation"] = {"after_days_overdue": form["escalate_after"].strip(),
                              "to": form.get("escalate_to", "manager")}
    schedule = form.get("schedule", "none")
    if schedule in ("cron", "interval_days"):
        body["schedule"] = {schedule: form.get(schedule, "").strip(), "timezone": form.get("timezone", "").strip()}
    return body
