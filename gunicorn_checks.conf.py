"""gunicorn settings of the check server (`scripts/serve` starts it beside the main one).

asyncio workers: an idle or slow connection holds no worker (see accessreview/checkserver.py)."""

import os

bind = os.environ.get("ACCESSREVIEW_CHECK_BIND", "127.0.0.1:8001")
workers = int(os.environ.get("ACCESSREVIEW_CHECK_WORKERS", "2"))
worker_class = "asgi"
worker_connections = 10000
asgi_lifespan = "on"
preload_app = True
accesslog = None
timeout = 30
keepalive = 75  # the portal keeps its connections; an idle one costs a socket, not a worker
control_socket_disable = True


def when_ready(server):
    # As the main server: the directory is loaded once before the fork and shared copy-on-write.
    from checks import flask_app

    flask_app.extensions["authz"].preload()
    flask_app.extensions["db"].engine.dispose()


def post_fork(server, worker):
    from checks import flask_app

    flask_app.extensions["db"].engine.dispose(close=False)
    # Start catching up with the directory now, in the background: checks answer from the snapshot
    # the master loaded until then, instead of waiting for the catch-up.
    flask_app.extensions["authz"].snapshot()


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
