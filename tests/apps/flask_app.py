"""An unmodified Flask application (``tests.apps.flask_app:app``), wrapped in wsgiref.validate.

- ``POST /form``      -- urlencoded form fields back as JSON
- ``POST /json``      -- sums ``numbers`` from a JSON body
- ``POST /upload``    -- reads ``request.stream`` to EOF; length and SHA-256
- ``GET /download``   -- ``send_file(path)``: Werkzeug wraps the file with
  ``environ["wsgi.file_wrapper"]`` (``use_x_sendfile`` is off)
"""

from __future__ import annotations

import hashlib

from flask import Flask, jsonify, request, send_file

from tests.apps._validate import validated

flask_app = Flask(__name__)


@flask_app.post("/form")
def form():
    return jsonify(fields=request.form.to_dict(), content_type=request.content_type)


@flask_app.post("/json")
def json_sum():
    data = request.get_json()
    return jsonify(sum=sum(data["numbers"]), name=data["name"])


@flask_app.post("/upload")
def upload():
    digest = hashlib.sha256()
    length = 0
    while chunk := request.stream.read(64 * 1024):
        digest.update(chunk)
        length += len(chunk)
    return jsonify(
        length=length,
        sha256=digest.hexdigest(),
        content_length=request.environ.get("CONTENT_LENGTH", "<absent>"),
    )


@flask_app.get("/download")
def download():
    return send_file(request.args["path"], mimetype="application/octet-stream")


@flask_app.get("/")
def index():
    return "hello", 200, {"Content-Type": "text/plain"}


app = validated(flask_app)
