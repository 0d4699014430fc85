"""gunicorn settings of the main server (pages, API, sync) for `scripts/serve`; every value can be
overridden on the command line. The portal's checks have a server of their own
(gunicorn_checks.conf.py): nothing that happens here can keep them waiting.

Threaded workers: a connection that is idle holds no thread once gunicorn has put it back on its
poller (after at most 5 s), and one that sends its request slowly holds one thread of eight, not a
whole worker, so a browser's spare connections no longer stop the pages."""

import os

bind = os.environ.get("ACCESSREVIEW_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("ACCESSREVIEW_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("ACCESSREVIEW_THREADS", "8"))
# Load the app once in the master: a bad setting or policy stops gunicorn at once, not in a loop of
# worker restarts.
preload_app = True
accesslog = None  # the app writes its own JSON request log
timeout = 30
# gunicorn 25.1+ opens a control socket at one path per user (~/.gunicorn/gunicorn.ctl), which two
# servers on one host would fight over; nothing here uses it. (Older gunicorns ignore the setting.)
control_socket_disable = True


def when_ready(server):
    from accessreview import serving
    from wsgi import app

    serving.preload(app)


def post_fork(server, worker):
    from accessreview import serving
    from wsgi import app

    serving.after_fork(app)
    # Close each connection at once after its answer unless the client sent more than was read
    # (see accessreview/serving.py): a worker would otherwise wait for every client to close.
    serving.install()


def child_exit(server, worker):
    from accessreview import serving
    from wsgi import app

    serving.worker_exited(worker.pid, app)
