"""ASGI entry point of the check server: ``gunicorn --config gunicorn_checks.conf.py checks:app``.

The same app as the main server's (wsgi.py, which stops the process on a bad setting or policy),
with only the checks and probes answered, on an event loop."""

from accessreview.checkserver import CheckServer
from wsgi import app as flask_app

app = CheckServer(flask_app)
