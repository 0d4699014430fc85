"""The AuthZEN Authorization API 1.0 over HTTP: the PDP metadata, evaluation, evaluations and the
searches (accessreview.authz.authzen does the work).

Evaluation and evaluations are normally answered by the hot path (accessreview.api.hotpath); these
views answer the rest the same way, and the metadata and the searches. The check server's port
(accessreview.checkserver) answers all of them too, through the same app, and both ports' metadata
name the check server's endpoints (CHECK_URL) where the portal's checks belong.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from ..authz import authzen
from ..guard import authorize, public
from . import shapes
from .common import answer, documented, fail_closed

bp = Blueprint("authzen", __name__)

ERRORS = {400: shapes.ErrorOut, 401: shapes.ErrorOut, 403: shapes.ErrorOut, 413: shapes.ErrorOut,
          500: shapes.ErrorOut, 503: shapes.ErrorOut}  # 500: fail_closed's deny
CONFIGURATION_PATH = "/.well-known/authzen-configuration"
EVALUATION_PATH = "/access/v1/evaluation"
EVALUATIONS_PATH = "/access/v1/evaluations"
SEARCH_PATHS = {"subject": "/access/v1/search/subject", "resource": "/access/v1/search/resource",
                "action": "/access/v1/search/action"}


bp.register_error_handler(Exception, fail_closed)


@bp.get(CONFIGURATION_PATH)
@public
@documented("The AuthZEN policy decision point's metadata: its identifier and endpoints", tag="authzen",
            responses={200: shapes.AuthzenConfigurationOut})
def configuration():
    # The identifier is the address this document was asked at: a PEP must find it identical to the
    # one it inserted the well-known path into, or use nothing here. The endpoints are the check
    # server's (CHECK_URL), on either server, so that a PEP that discovers the PDP on the main port
    # still sends its checks where nothing slow can keep them waiting; with no check server, this one's.
    base = request.host_url.rstrip("/")
    endpoints = current_app.config["CHECK_URL"] or base
    return answer({
        "policy_decision_point": base,
        "access_evaluation_endpoint": endpoints + EVALUATION_PATH,
        "access_evaluations_endpoint": endpoints + EVALUATIONS_PATH,
        "search_subject_endpoint": endpoints + SEARCH_PATHS["subject"],
        "search_resource_endpoint": endpoints + SEARCH_PATHS["resource"],
        "search_action_endpoint": endpoints + SEARCH_PATHS["action"],
    })


def _answer(work) -> Response:
    caller = authorize("check")
    text = work(current_app._get_current_object(), caller, request.get_data(cache=True))
    return Response(text + "\n", mimetype="application/json")


@bp.post(EVALUATION_PATH)
@documented("AuthZEN access evaluation: may the subject do the action on the resource?", body=authzen.Evaluation,
            tag="authzen", responses={200: shapes.AuthzenDecisionOut, **ERRORS})
def evaluation():
    return _answer(authzen.evaluation)


@bp.post(EVALUATIONS_PATH)
@documented("AuthZEN access evaluations: many, with defaults and an evaluations_semantic, answered in order",
            body=authzen.Evaluations, tag="authzen", responses={200: shapes.AuthzenEvaluationsAnswer, **ERRORS})
def evaluations():
    return _answer(authzen.evaluations)


@bp.post(SEARCH_PATHS["subject"])
@documented("AuthZEN subject search: every subject of the type that may do the action on the resource",
            body=authzen.SubjectSearch, tag="authzen", responses={200: shapes.AuthzenEntityPage, **ERRORS})
def search_subject():
    return _answer(authzen.search_subject)


@bp.post(SEARCH_PATHS["resource"])
@documented("AuthZEN resource search: every resource of the type on which the subject may do the action",
            body=authzen.ResourceSearch, tag="authzen", responses={200: shapes.AuthzenEntityPage, **ERRORS})
def search_resource():
    return _answer(authzen.search_resource)


@bp.post(SEARCH_PATHS["action"])
@documented("AuthZEN action search: every action the subject may do on the resource",
            body=authzen.ActionSearch, tag="authzen", responses={200: shapes.AuthzenActionPage, **ERRORS})
def search_action():
    return _answer(authzen.search_action)
