"""ASGI entry point of the check server: ``gunicorn --config gunicorn_checks.conf.py checks:app``."""

import sys

from accessreview import create_app
from accessreview.authz.policy import PolicyLoadError
from accessreview.checkserver import CheckServer
from accessreview.config import ConfigError

try:
    flask_app = create_app()
except (ConfigError, PolicyLoadError) as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)
app = CheckServer(flask_app)
