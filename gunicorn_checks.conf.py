"""gunicorn settings of the check server (`scripts/serve` starts it beside the main one).

asyncio workers: an idle or slow connection holds no worker (see accessreview/checkserver.py)."""

import os

from accessreview.checkserver import ACCEPT_QUEUE

bind = os.environ.get("ACCESSREVIEW_CHECK_BIND", "127.0.0.1:8001")
workers = int(os.environ.get("ACCESSREVIEW_CHECK_WORKERS", "2"))
worker_class = "asgi"
worker_connections = 10000
backlog = ACCEPT_QUEUE  # each worker's server sets the socket's queue to it again
asgi_lifespan = "on"
preload_app = True
accesslog = None
timeout = 30
keepalive = 75  # the portal keeps its connections; an idle one costs a socket, not a worker
control_socket_disable = True


def when_ready(server):
    from accessreview import serving
    from checks import flask_app

    serving.preload(flask_app)


def post_fork(server, worker):
    from accessreview import serving
    from checks import flask_app

    serving.after_fork(flask_app)


def child_exit(server, worker):
    from accessreview import serving
    from checks import flask_app as app

    serving.worker_exited(worker.pid, app)
