"""``tests.wsgi11.apps:application``: what every server under test serves.

The first path segment picks the mount; the rest is the mounted
application's path (the segment moves to ``SCRIPT_NAME``, as a server's own
mount would do it):

===============  ==============================================================
``/native``      the probe application on its own: what the server gives
``/middleware``  the probe behind ``WSGI11Middleware(max_body_size=LIMIT)``
``/buffered``    the probe behind the middleware in compatibility mode (App. B)
``/flask``       tests/apps/flask_app.py behind the middleware
``/flask-validated``  the same, with ``propylon.wsgi11.validator`` between them
``/django``      tests/apps/django_project behind the middleware, ``buffer_body=True``
``/break-CHECK``  the probe behind a breaker that makes CHECK fail
                 (tests/wsgi11/breakers.py)
``/ready``       ``ready``: the launchers poll it until the server answers
===============  ==============================================================

Flask and Django are imported on first use, so servers that only run the
conformance kit do not pay for them. The same module runs under Debian's
system Python inside mod_wsgi, so it uses nothing outside the repository and
the standard library at import time.
"""

from __future__ import annotations

import os
import threading

from propylon.wsgi11 import WSGI11Middleware, validator
from propylon.wsgi11.conformance import ProbeApp, ProbeStore
from tests.wsgi11.breakers import BREAKERS, PARTIAL_BREAKERS

#: The request body limit every server under test is configured with (and the
#: conformance kit is told): small, so the App. A checks send little.
LIMIT = 256 * 1024

probe = ProbeApp(ProbeStore(os.environ.get("WSGI11_PROBE_STORE")))
_lock = threading.Lock()


def _flask():
    from tests.apps.flask_app import app

    return WSGI11Middleware(app, max_body_size=1 << 30)


def _flask_validated():
    from tests.apps.flask_app import flask_app

    return WSGI11Middleware(validator(flask_app), max_body_size=1 << 30)


def _django():
    from tests.apps.django_project.wsgi import application as django_app

    return WSGI11Middleware(django_app, max_body_size=1 << 30, buffer_body=True)


def _ready(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"ready"]


MOUNTS = {
    "native": probe,
    "middleware": WSGI11Middleware(probe, max_body_size=LIMIT),
    "buffered": WSGI11Middleware(probe, max_body_size=LIMIT, buffer_body=True),
    "flask": _flask,
    "flask-validated": _flask_validated,
    "django": _django,
    "ready": _ready,
    **{f"break-{check}": breaker(probe) for check, breaker in {**BREAKERS, **PARTIAL_BREAKERS}.items()},
}
_LAZY = {"flask", "flask-validated", "django"}


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    name, _, rest = path.lstrip("/").partition("/")
    mount = MOUNTS.get(name)
    if mount is None:
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
        return [b"no mount\n"]
    if name in _LAZY:
        with _lock:
            if name in _LAZY:
                MOUNTS[name] = mount = mount()
                _LAZY.discard(name)
            mount = MOUNTS[name]
    environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + "/" + name
    environ["PATH_INFO"] = "/" + rest if rest or path.endswith("/") else ""
    return mount(environ, start_response)
