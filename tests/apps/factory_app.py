"""Apps for loading tests: ``tests.apps.factory_app:create_app --factory`` and the default attribute.

``propylon tests.apps.factory_app`` (no ``:ATTR``) must find ``application``
(tried before ``app``, as gunicorn and uvicorn do).
"""

from __future__ import annotations

from tests.apps._validate import validated


def _answer(text):
    body = text.encode()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    return validated(app)


def create_app():
    """The factory: called once, without arguments, by ``--factory``."""
    return _answer("from factory")


application = _answer("from application")
app = _answer("from app")
