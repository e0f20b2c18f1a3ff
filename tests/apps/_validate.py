"""``wsgiref.validate.validator`` adapted to WSGI 1.1, for wrapping every well-behaved test app.

wsgiref.validate (Python 3.11) checks PEP 3333; it accepts ``wsgi.version ==
(1, 1)`` as it is (it only checks that the value is a tuple). Two of its checks
would instead stop us testing what WSGI 1.1 adds, so :func:`validated` adjusts
exactly those two and keeps every other check:

1. Its ``InputWrapper.read`` asserts exactly one argument (PEP 3333 lists
   ``read(size)``), and its ``__iter__`` iterates by calling its own
   ``readline()`` instead of the server's ``__iter__``. WSGI 1.1 allows
   ``read()``, ``read(-1)`` and ``read(None)`` and we want the server's own
   iteration under test, so :class:`_Wsgi11Input` (placed *inside* the
   validator, i.e. wrapping its wrapper) sends those calls to the server's
   stream directly, still checking that the results are bytes.
2. It wraps the returned iterable in its ``IteratorWrapper``, which hides a
   ``wsgi.file_wrapper`` result from the server's ``isinstance`` check -- the
   very thing WSGI 1.1 file-wrapper tests are about. When the application
   returns a ``propylon.FileWrapper`` (or subclass), the original object is
   handed to the server, the validator's wrapper is marked closed (so it does
   not complain when collected: the server closes the real object, which the
   file-wrapper tests check), and the passthrough is logged on ``wsgi.errors``
   as ``FILE-WRAPPER-PASSTHROUGH <class>`` so tests can see it happened.
"""

from __future__ import annotations

from wsgiref.validate import validator

import propylon


class _Wsgi11Input:
    """Sits between the app and wsgiref.validate's InputWrapper; see the module docstring."""

    def __init__(self, checked) -> None:
        self._checked = checked  # wsgiref.validate.InputWrapper
        self._raw = checked.input  # the server's wsgi.input

    def read(self, *args):
        if not args or args[0] is None or args[0] < 0:
            data = self._raw.read(*args)
            assert type(data) is bytes, f"wsgi.input.read{args} returned {type(data)}"
            return data
        return self._checked.read(*args)

    def readline(self, *args):
        return self._checked.readline(*args)

    def readlines(self, *args):
        return self._checked.readlines(*args)

    def __iter__(self):
        for line in self._raw:
            assert type(line) is bytes, f"iterating wsgi.input gave {type(line)}"
            yield line

    def close(self):
        self._checked.close()  # asserts: applications must not close wsgi.input


def _wsgi11_input(app):
    def with_wsgi11_input(environ, start_response):
        environ["wsgi.input"] = _Wsgi11Input(environ["wsgi.input"])
        return app(environ, start_response)

    return with_wsgi11_input


def validated(app):
    """``app`` checked by wsgiref.validate on every call, with the two WSGI 1.1 adjustments."""
    checked = validator(_wsgi11_input(app))

    def validated_app(environ, start_response):
        result = checked(environ, start_response)
        original = getattr(result, "original_iterator", None)
        if isinstance(original, propylon.FileWrapper):
            result.closed = True
            environ["wsgi.errors"].write(f"FILE-WRAPPER-PASSTHROUGH {type(original).__name__}\n")
            return original
        return result

    return validated_app
