"""The WSGI 1.1 conformance kit: probe applications and a client that judges.

Run it against any server:

1. serve the probe application, e.g. ``gunicorn
   'propylon.wsgi11.conformance:ProbeApp()'`` (wrap it in
   :class:`propylon.wsgi11.WSGI11Middleware` to check the middleware on that
   server);
2. ``python -m propylon.wsgi11.conformance --url http://127.0.0.1:8000``
   prints, point by point, which WSGI 1.1 guarantees the server gives, and
   exits 1 if one is missing. ``--max-body-size`` (the limit the server is
   configured with) turns on the Appendix A checks; ``--buffered-url`` (the
   probe behind the compatibility mode of Appendix B) the Appendix B checks;
   ``--json FILE`` writes the results; ``--table FILE...`` renders results as
   the Markdown page docs/wsgi11-servers.md.

Modules: ``probe`` (the server side), ``client`` and ``http2`` (raw HTTP/1.1
and HTTP/2), ``checks`` (one per requirement), ``report`` (JSON and table).
"""

from propylon.wsgi11.conformance.checks import CHECKS, Check, Context, Outcome, run
from propylon.wsgi11.conformance.client import Target
from propylon.wsgi11.conformance.probe import ProbeApp, ProbeStore

__all__ = ["CHECKS", "Check", "Context", "Outcome", "ProbeApp", "ProbeStore", "Target", "run"]
