"""The start-up scenarios' Flask application (start-flask-w*): the hello world
as a Flask view, what a worker costs with a framework loaded.

``GET /`` answers the 13 bytes of ``wsgi_apps.hello`` (Flask adds its own
headers). With ``$BENCH_IMPORTS`` set, importing the module appends the
importing process's id to that file, as ``wsgi_apps`` does.
"""

import os

from flask import Flask, Response

if os.environ.get("BENCH_IMPORTS"):
    with open(os.environ["BENCH_IMPORTS"], "a") as imports:
        imports.write(f"{os.getpid()}\n")

app = Flask(__name__)


@app.get("/")
def hello():
    return Response(b"Hello, world!", mimetype="text/plain")
