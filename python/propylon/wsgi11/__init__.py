"""WSGI 1.1 for any PEP 3333 server: middleware, validator, reference FileWrapper.

Pure Python, no dependencies, and no need for Propylon's compiled server:
this package runs under gunicorn, waitress, mod_wsgi, uWSGI, flup, wsgiref, a
CGI script, or Propylon.
It is also its own distribution, ``propylon-wsgi11`` (packaging/wsgi11),
which installs it with the two modules it imports, :mod:`propylon.errors`
and :mod:`propylon.filewrapper`, and nothing else of Propylon.
The specification is docs/spec/wsgi-1.1.md.

- :class:`WSGI11Middleware` gives an application the WSGI 1.1 guarantees on a
  server that only implements PEP 3333;
- :func:`validator` checks both sides of the interface against WSGI 1.1;
- :class:`FileWrapper` is the reference ``wsgi.file_wrapper`` (the same class
  as ``propylon.FileWrapper``);
- :func:`is_wsgi11` is how a framework tells a 1.1 server apart (section 9);
- :mod:`propylon.wsgi11.conformance` is the conformance kit: probe
  applications for a server, and a client that reports which guarantees the
  server gives (``python -m propylon.wsgi11.conformance --help``).
"""

from propylon.errors import ClientDisconnected, InvalidRequestBody, RequestBodyError, RequestBodyTooLarge
from propylon.filewrapper import FileWrapper
from propylon.wsgi11.middleware import WSGI11Middleware, is_wsgi11
from propylon.wsgi11.response import ResponseTooShort
from propylon.wsgi11.validate import WSGIViolation, validator

__all__ = [
    "ClientDisconnected",
    "FileWrapper",
    "InvalidRequestBody",
    "RequestBodyError",
    "RequestBodyTooLarge",
    "ResponseTooShort",
    "WSGI11Middleware",
    "WSGIViolation",
    "is_wsgi11",
    "validator",
]
