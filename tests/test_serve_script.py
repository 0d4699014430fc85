"""The README's quick start (scripts/serve), stopped as an operator or a supervisor stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request

from support import PROJECT_ROOT, free_port


def _answers(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
        return True
    except OSError:
        return False


def _alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
        return True
    except ProcessLookupError:
        return False


def test_the_quick_start_stops_whole_when_only_its_script_is_signalled(tmp_path):
    main, checks = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("ACCESSREVIEW_")}
    env.update(ACCESSREVIEW_INSTANCE_DIR=str(tmp_path), ACCESSREVIEW_BIND=f"127.0.0.1:{main}",
               ACCESSREVIEW_CHECK_BIND=f"127.0.0.1:{checks}")
    script = subprocess.Popen(["scripts/serve"], cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (_answers(main) and _answers(checks)):
            assert time.monotonic() < deadline and script.poll() is None, "scripts/serve did not start"
            time.sleep(0.5)
        script.send_signal(signal.SIGTERM)  # the script alone, as `kill` or a supervisor sends it
        script.wait(timeout=60)
        deadline = time.monotonic() + 30
        while _alive(script.pid):  # its servers, scheduler and worker
            assert time.monotonic() < deadline, "processes of scripts/serve outlived it"
            time.sleep(0.2)
        assert not _answers(main) and not _answers(checks)
    finally:
        if _alive(script.pid):
            os.killpg(script.pid, signal.SIGKILL)
