"""The HTTP floor as the issue and DESIGN.md measured it (≈6,600 req/s there): a Flask view that
answers a constant JSON response and does nothing else, served by the same gunicorn as the service
(2 sync workers, the service's close after each answer), for bench/authorize.py.

The service's own ``GET /healthz`` is answered by its hot path ahead of Flask, so it is a stricter
floor than this one; the benchmark prints the checks against both.
"""

from flask import Flask, jsonify

from accessreview import serving

# gunicorn.conf.py installs this in each worker; with --preload, installing it here, in the
# master, before the workers are forked, does the same.
serving.install()

app = Flask(__name__)


@app.get("/healthz")
def healthz():
    return jsonify(status="ok")
