"""The application of the static scenarios on Propylon: a static mount and hello world.

``app = propylon.Application(wsgi=hello, static={"/static": DIR})``: the
server itself serves the files under ``/static/`` from DIR, the directory
named by ``$BENCH_STATIC_DIR`` (bench.py writes the scenarios' files there,
and gives nginx and Granian the same directory); every other path goes to
``wsgi_apps.hello``. The mount has the defaults of ``propylon.Static``, as a
user's would.

Only Propylon runs this module; nginx and Granian get their static settings
on their command line or in their configuration (bench.py, SERVERS). Without
``propylon.Application`` (a Propylon older than the application object) the
import fails with one line saying so, and the bench reports it.
"""

import os

from wsgi_apps import hello

import propylon

STATIC_DIR = os.environ.get("BENCH_STATIC_DIR", "")
if not STATIC_DIR:
    raise RuntimeError("$BENCH_STATIC_DIR is not set (bench.py sets it to the run's directory of static files)")

Application = getattr(propylon, "Application", None)
if Application is None:
    raise ImportError(f"propylon {getattr(propylon, '__version__', '?')} has no propylon.Application")

app = Application(wsgi=hello, static={"/static": STATIC_DIR})
