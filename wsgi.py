"""WSGI entry point: ``gunicorn wsgi:app``. A bad setting or policy stops the process with one line."""

import sys

from accessreview import create_app
from accessreview.authz.policy import PolicyLoadError
from accessreview.config import ConfigError

try:
    app = create_app()
except (ConfigError, PolicyLoadError) as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)
