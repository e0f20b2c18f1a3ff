"""Helpers for the WSGI 1.1 portability tests (tests/test_wsgi11_*.py): the
application every server serves, the server launchers, and the cached runs
of the conformance kit."""
