"""Reading application objects (``propylon.declarations``) and resolving the
application's configuration (``propylon.appconfig``), in process: tables of
declarations and the plan or the one-line error each gives.

The end-to-end behaviour (the ``propylon`` command on these objects, the
hooks, the configuration sources) is in tests/test_application.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import propylon
from propylon.appconfig import GivenValue, read_app_arguments, read_app_environ, resolve
from propylon.config import ConfigError
from propylon.declarations import ConfigKey, DeclarationError, link_value, normalize_prefix, read_application
from propylon.plan import ServePlan, StaticMount
from propylon.sources import read_app_file, read_file, unknown_variables


def hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [])
    return [b"hello"]


def ws_handler(connection: Any) -> None:
    return None


class Declared:
    """An application object written by hand: only what the test sets."""

    def __init__(self, endpoints: dict[str, object] | None = None, **attributes: object) -> None:
        self._endpoints = {"wsgi": hello} if endpoints is None else endpoints
        for name, value in attributes.items():
            setattr(self, f"__{name}__", value)

    def __endpoint__(self, protocol: str) -> object:
        return self._endpoints.get(protocol)


# ------------------------------------------------------------------ endpoints


def test_a_plain_callable_is_wsgi_on_every_path() -> None:
    declared = read_application(hello)
    assert declared.plan == ServePlan.for_wsgi(hello)
    assert (declared.config, declared.startup, declared.shutdown) == (None, None, None)


def test_a_callable_with_endpoint_is_an_application_object() -> None:
    class Both(Declared):
        def __call__(self, environ: object, start_response: object) -> list[bytes]:
            return []

    assert read_application(Both()).plan.wsgi is hello


@pytest.mark.parametrize(
    ("app", "routes"),
    [
        (Declared(), (("wsgi", ""),)),
        (Declared(routes={"wsgi": ["/api/", "/admin", "/api"]}), (("wsgi", "/api"), ("wsgi", "/admin"))),
        (Declared(routes={"wsgi": ["/"]}), (("wsgi", ""),)),
        # Declarations of protocols this server does not serve route nothing.
        (Declared(routes={"websocket": ["/ws"]}), (("wsgi", ""),)),
        (Declared({"websocket": ws_handler}, routes={"websocket": ["/ws"]}), ()),
        (Declared({}), ()),
        (propylon.Application(wsgi=hello, websocket={"/ws": ws_handler}), (("wsgi", ""),)),
        (propylon.Application(), ()),
    ],
)
def test_routes(app: object, routes: tuple[tuple[str, str], ...]) -> None:
    assert read_application(app).plan.routes == routes


def test_only_served_protocols_are_asked_for() -> None:
    asked: list[str] = []

    class Asking:
        def __endpoint__(self, protocol: str) -> object:
            asked.append(protocol)
            return None

    read_application(Asking())
    assert asked == ["websocket", "wsgi"]
    asked.clear()
    plan = read_application(Asking(), protocols={"wsgi", "websocket", "stream"}).plan
    assert asked == ["websocket", "stream", "wsgi"] and plan.routes == ()


def test_application_serves_websocket_where_the_server_has_it() -> None:
    app = propylon.Application(wsgi=hello, websocket={"/ws": ws_handler, "/ws/admin": hello})
    plan = read_application(app, protocols={"wsgi", "websocket"}).plan
    assert plan.routes == (("wsgi", ""),)
    # Each WebSocket prefix with its own handler, classified.
    assert [(r.prefix, r.handler, r.style) for r in plan.websocket] == [
        ("/ws", ws_handler, "blocking"),
        ("/ws/admin", hello, "blocking"),
    ]
    dispatch = app.__endpoint__("websocket")
    assert isinstance(dispatch, propylon.application.PrefixDispatch)
    assert dispatch.handler_for("/ws/admin/x") is hello and dispatch.handler_for("/ws/y") is ws_handler


@pytest.mark.parametrize(
    ("app", "message"),
    [
        (3, "not an application: a int is neither callable (WSGI) nor an application object"),
        (Declared({"wsgi": "hello"}), "__endpoint__('wsgi') returned a str, not a callable or None"),
        (Declared(routes=["/api"]), "__routes__ must be a mapping of protocol to URL prefixes, not a list"),
        (Declared(routes={"wsgi": "/api"}), "__routes__['wsgi'] must be a list of URL prefixes such as ['/api']"),
        (Declared(routes={"wsgi": ["api"]}), "__routes__['wsgi']: bad URL prefix 'api': it must start with '/'"),
        (Declared(routes={"websocket": ["ws"]}), "__routes__['websocket']: bad URL prefix 'ws'"),
        (Declared(routes={"wsgi": [3]}), "a URL prefix is a string such as '/api', not a int"),
        (Declared(routes={1: ["/"]}), "__routes__: protocol names are strings, not 1"),
        (Declared(static=["/static"]), "__static__ must be a mapping of URL prefix to directory, not a list"),
        (Declared(static={"/s": 3}), "static mount '/s': a mount is a directory (str or os.PathLike) or an object"),
        (Declared(preload="/app.css"), "__preload__ must be a list of URL paths, not a str"),
        (Declared(preload=[3]), "__preload__ entries are strings, not int"),
        (Declared(config=["debug"]), "__config__ must be a mapping of key to default value or type, not a list"),
        (Declared(config={"x": None}), "__config__['x']: the default must be a bool, int, float or str"),
        (Declared(config={"x": list}), "__config__['x']: the type of a key is bool, int, float or str, not list"),
        (Declared(config={"x": [1]}), "the default must be a bool, int, float or str"),
        (Declared(config={"a-b": 1, "A_B": 2}), "__config__: 'A_B' and 'a-b' are the same key"),
        (Declared(config={"no spaces": 1}), "__config__: bad key 'no spaces'"),
    ],
)
def test_bad_declarations(app: object, message: str) -> None:
    with pytest.raises(DeclarationError) as info:
        read_application(app)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_endpoint_that_raises_keeps_the_cause() -> None:
    class Raising:
        def __endpoint__(self, protocol: str) -> object:
            raise LookupError("no such thing")

    with pytest.raises(DeclarationError, match=r"__endpoint__\('websocket'\) raised LookupError: no such thing") as info:
        read_application(Raising())
    assert isinstance(info.value.__cause__, LookupError)


def test_hooks_must_be_callable() -> None:
    app = Declared()
    app.startup = "soon"  # type: ignore[attr-defined]
    with pytest.raises(DeclarationError, match="startup must be a function or None, not a str"):
        read_application(app)


# ------------------------------------------------------------------- prefixes


@pytest.mark.parametrize(
    ("prefix", "normal"),
    [("/", ""), ("/api", "/api"), ("/api/", "/api"), ("/a/b/", "/a/b"), ("/%7Euser", "/%7Euser"),
     ("/a:b@c!$&'()*+,;=", "/a:b@c!$&'()*+,;="), ("/v1.2", "/v1.2")],
)  # fmt: skip
def test_prefixes_normalized(prefix: str, normal: str) -> None:
    assert normalize_prefix(prefix, "here") == normal


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("", "it must start with '/'"),
        ("api", "it must start with '/' (e.g. '/api')"),
        ("//api", "empty segment"),
        ("/a//b", "empty segment"),
        ("/a/../b", "a '..' segment"),
        ("/./a", "a '.' segment"),
        ("/a?b", "only characters of a URL path"),
        ("/a#b", "only characters of a URL path"),
        ("/a b", "only characters of a URL path"),
        ("/caf\u00e9", "only characters of a URL path"),
        ("/a%zz", "only characters of a URL path"),
        ("/a\\b", "only characters of a URL path"),
    ],
)
def test_bad_prefixes(prefix: str, message: str) -> None:
    with pytest.raises(DeclarationError, match="here: ") as info:
        normalize_prefix(prefix, "here")
    assert message in str(info.value)


# --------------------------------------------------------------------- static


def test_static_mounts(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "docs").mkdir()

    class Mount:  # duck-typed: only `directory` and what it wants to change
        directory = tmp_path / "docs"
        index = None

    app = propylon.Application(
        wsgi=hello,
        static={
            "/static/": str(tmp_path / "assets"),
            "/assets": propylon.Static(tmp_path / "assets", cache_control="public, max-age=60", dotfiles=True),
            "/docs": Mount(),  # type: ignore[dict-item]
        },
    )
    assert read_application(app).plan.static == (
        StaticMount("/static", str(tmp_path / "assets")),
        StaticMount("/assets", str(tmp_path / "assets"), cache_control="public, max-age=60", dotfiles=True),
        StaticMount("/docs", str(tmp_path / "docs"), index=None),
    )


def test_static_declares_the_defaults_a_plan_mount_has() -> None:
    # propylon.Static is what users write; the reader fills what a mount
    # object leaves out from StaticMount's defaults: the two must agree.
    public = {f.name: f.default for f in dataclasses.fields(propylon.Static) if f.name != "directory"}
    plan = {f.name: f.default for f in dataclasses.fields(StaticMount) if f.name not in ("prefix", "directory")}
    assert public == plan


def test_static_relative_directory_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "public").mkdir()
    monkeypatch.chdir(tmp_path)
    (mount,) = read_application(propylon.Application(static={"/": "public"})).plan.static
    assert (mount.prefix, mount.directory) == ("", str(tmp_path / "public"))


@pytest.mark.parametrize(
    ("mount", "message"),
    [
        ("missing", "static mount '/static': directory {tmp}/missing does not exist"),
        ("file.txt", "static mount '/static': {tmp}/file.txt is a file, not a directory"),
        (propylon.Static("dir", cache_control="a\r\nb"), "cache_control 'a\\r\\nb' is not a valid header field value"),
        (propylon.Static("dir", index="a/index.html"), "index must be a file name such as 'index.html'"),
        (propylon.Static("dir", index=""), "index must be a file name"),
        (propylon.Static("dir", precompressed="yes"), "precompressed must be True or False, not 'yes'"),  # type: ignore[arg-type]
        (propylon.Static(b"dir"), "the directory must be a str or os.PathLike, not a bytes"),  # type: ignore[arg-type]
    ],
)
def test_bad_static_mounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mount: object, message: str) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "file.txt").write_text("x")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DeclarationError) as info:
        read_application(propylon.Application(static={"/static": mount}))  # type: ignore[dict-item]
    assert message.format(tmp=tmp_path) in str(info.value)


def test_static_prefix_mounted_twice(tmp_path: Path) -> None:
    with pytest.raises(DeclarationError, match="the prefix '/s' is mounted twice"):
        read_application(propylon.Application(static={"/s": str(tmp_path), "/s/": str(tmp_path)}))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every directory")
def test_static_unreadable_directory(tmp_path: Path) -> None:
    (tmp_path / "closed").mkdir(mode=0)
    with pytest.raises(DeclarationError, match="is not readable by this process"):
        read_application(propylon.Application(static={"/s": str(tmp_path / "closed")}))


# -------------------------------------------------------------------- preload


@pytest.mark.parametrize(
    ("entry", "link"),
    [
        ("/static/app.css", "</static/app.css>; rel=preload; as=style"),
        ("/static/app.CSS?v=3", "</static/app.CSS?v=3>; rel=preload; as=style"),
        ("/app.js", "</app.js>; rel=preload; as=script"),
        ("/app.mjs", "</app.mjs>; rel=preload; as=script"),
        ("/f/font.woff2", "</f/font.woff2>; rel=preload; as=font; crossorigin"),
        ("/f/font.ttf", "</f/font.ttf>; rel=preload; as=font; crossorigin"),
        ("/hero.webp", "</hero.webp>; rel=preload; as=image"),
        ("/data.json", "</data.json>; rel=preload; as=fetch; crossorigin"),
        ("/subs.vtt", "</subs.vtt>; rel=preload; as=track"),
        ("</x>; rel=preload; as=fetch", "</x>; rel=preload; as=fetch"),
    ],
)
def test_preload_links(entry: str, link: str) -> None:
    assert link_value(entry) == link


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("/data.bin", "cannot tell what '.bin' is; give the Link value"),
        ("/README", "cannot tell what 'a file without extension' is"),
        ("static/app.css", "a preload is a URL path starting with '/'"),
        ("/a b.css", "a preload is a URL path starting with '/'"),
        ("/app.css#x", "a preload is a URL path starting with '/'"),
        ("https://cdn.example/app.css", "a preload is a URL path starting with '/'"),
        ("</x>; rel=preload\r\nSet-Cookie: a=b", "a Link value is '<URL>; rel=preload; as=...' in visible ASCII"),
        ("<no end", "a Link value is"),
    ],
)
def test_bad_preloads(entry: str, message: str) -> None:
    with pytest.raises(DeclarationError) as info:
        link_value(entry)
    assert message in str(info.value)


def test_preload_in_plan_without_duplicates() -> None:
    app = propylon.Application(wsgi=hello, preload=["/app.css", "/app.js", "/app.css"])
    assert read_application(app).plan.preload == (
        "</app.css>; rel=preload; as=style",
        "</app.js>; rel=preload; as=script",
    )


def test_application_refuses_one_string_as_preload() -> None:
    with pytest.raises(TypeError, match="preload is a list"):
        propylon.Application(preload="/app.css")


# --------------------------------------------------------------------- config


def test_config_declaration() -> None:
    app = propylon.Application(config={"Debug": False, "retries": 3, "ratio": 0.5, "name": "x", "db-url": str})
    assert read_application(app).config == {
        "debug": ConfigKey("Debug", bool, False, required=False),
        "retries": ConfigKey("retries", int, 3, required=False),
        "ratio": ConfigKey("ratio", float, 0.5, required=False),
        "name": ConfigKey("name", str, "x", required=False),
        "db_url": ConfigKey("db-url", str, None, required=True),
    }
    assert read_application(propylon.Application()).config is None


def _declared(config: dict[str, object]) -> dict[str, ConfigKey] | None:
    return read_application(propylon.Application(config=config)).config  # type: ignore[arg-type]


def _text(label: str, key: str, value: str) -> GivenValue:
    return GivenValue(key, value, label, text=True)


def _toml(key: str, value: object) -> GivenValue:
    return GivenValue(key, value, f"app.toml:1: app.{key}", text=False)


DECLARED = {"debug": False, "retries": 3, "ratio": 0.5, "name": "x", "db-url": str}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ([_text("--app-config debug", "DEBUG", "yes")], {"debug": True}),
        ([_text("PROPYLON_APP_DEBUG", "DEBUG", "0")], {"debug": False}),
        ([_text("x", "debug", "On")], {"debug": True}),
        ([_text("x", "retries", " -7 ")], {"retries": -7}),
        ([_text("x", "ratio", "2")], {"ratio": 2.0}),
        ([_text("x", "name", "")], {"name": ""}),
        ([_text("x", "DB_URL", "sqlite://")], {"db-url": "sqlite://"}),
        ([_toml("debug", True), _toml("retries", 5), _toml("ratio", 1), _toml("name", "n")],
         {"debug": True, "retries": 5, "ratio": 1.0, "name": "n"}),
    ],
)  # fmt: skip
def test_config_values_read_as_declared(given: list[GivenValue], expected: dict[str, object]) -> None:
    defaults = {"debug": False, "retries": 3, "ratio": 0.5, "name": "x", "db-url": "postgres://"}
    config = resolve([_text("x", "db_url", "postgres://"), *given], [], [], _declared(DECLARED))
    assert config == {**defaults, **expected}
    assert [type(config[name]) for name in defaults] == [bool, int, float, str, str]


def test_config_required_key_missing() -> None:
    with pytest.raises(ConfigError) as info:
        resolve([_text("x", "debug", "1")], [], [], _declared(DECLARED))
    assert str(info.value) == (
        "the application needs configuration key 'db-url' (str); give it with --app-config db-url=..., "
        "PROPYLON_APP_DB_URL or in the [app] table of the config file"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (_text("PROPYLON_APP_DEBUG", "debug", "maybe"), "PROPYLON_APP_DEBUG must be true or false (or 1/0, yes/no"),
        (_text("--app-config retries", "retries", "1.5"), "--app-config retries must be a whole number, got '1.5'"),
        (_text("x", "ratio", "fast"), "x must be a number, got 'fast'"),
        (_text("x", "ratio", "nan"), "x must be a number, got 'nan'"),
        (_toml("debug", "true"), "app.toml:1: app.debug must be true or false, not the string 'true'"),
        (_toml("retries", 1.5), "app.retries must be an integer, not the float 1.5"),
        (_toml("retries", True), "app.retries must be an integer, not the boolean true"),
        (_toml("ratio", "1"), "app.ratio must be a number, not the string '1'"),
        (_toml("name", 3), "app.name must be a string, not the integer 3"),
        (_toml("name", [1]), "app.name must be a string, not an array"),
        (_text("--app-config retires", "retires", "1"),
         "--app-config retires: the application has no configuration key 'retires' (did you mean 'retries'?)"),
    ],
)  # fmt: skip
def test_bad_config_values(value: GivenValue, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve([value, _text("x", "db-url", "d")], [], [], _declared(DECLARED))
    assert message in str(info.value)


def test_config_precedence_and_key_spelling() -> None:
    cli = [_text("--app-config", "Name", "cli"), _text("--app-config", "name", "cli-last")]
    env = [_text("PROPYLON_APP_NAME", "NAME", "env"), _text("PROPYLON_APP_LEVEL", "LEVEL", "env")]
    file = [_toml("name", "file"), _toml("level", 3), _toml("only-file", True)]
    assert resolve(cli, env, file, None) == {"name": "cli-last", "level": "env", "only_file": True}


def test_config_without_declaration_passes_every_key_as_given() -> None:
    given = [_text("--app-config", "anything", "1"), _toml("count", 2), _toml("list", [1, 2])]
    assert resolve(given, [], [], None) == {"anything": "1", "count": 2, "list": [1, 2]}
    with pytest.raises(ConfigError, match="it declares none"):
        resolve([_text("--app-config x", "x", "1")], [], [], _declared({}))


def test_app_arguments_and_environ() -> None:
    assert read_app_arguments(["a=1", "b-c==x", "d="]) == [
        GivenValue("a", "1", "--app-config a", text=True),
        GivenValue("b-c", "=x", "--app-config b-c", text=True),
        GivenValue("d", "", "--app-config d", text=True),
    ]
    for bad in ("novalue", "=1", "a b=1", " =1"):
        with pytest.raises(ConfigError, match="--app-config takes KEY=VALUE"):
            read_app_arguments([bad])
    environ = {"PROPYLON_APP_DEBUG": "1", "PROPYLON_APP_EMPTY": " ", "PROPYLON_APP_": "x", "PROPYLON_THREADS": "2"}
    assert read_app_environ(environ) == [GivenValue("DEBUG", "1", "PROPYLON_APP_DEBUG", text=True)]
    assert unknown_variables(environ) == []


def test_app_table_in_config_file(tmp_path: Path) -> None:
    path = tmp_path / "propylon.toml"
    path.write_text('threads = 2\n\n[app]\ndebug = true\n"db-url" = "x"\n\n[other]\ny = 1\n')
    with pytest.raises(ConfigError, match=r"propylon.toml:7: unknown option 'other'"):
        read_file(str(path))
    path.write_text('threads = 2\n\n[app]\ndebug = true\n"db-url" = "x"\n# end\n')
    assert read_file(str(path)) == {"threads": 2}
    assert read_app_file(str(path)) == [
        GivenValue("debug", True, f"{path}:4: app.debug", text=False),
        GivenValue("db-url", "x", f"{path}:5: app.db-url", text=False),
    ]
    path.write_text("[app]\nDebug = true\ndebug = false\n")
    with pytest.raises(ConfigError, match=r":3: app.debug is the same key as 'Debug'; keep one"):
        read_app_file(str(path))
    path.write_text('app = "x"\n')
    with pytest.raises(ConfigError, match=r":1: 'app' is the table of the application's configuration"):
        read_file(str(path))
    path.write_text("threads = 2\n")
    assert read_app_file(str(path)) == []


# ---------------------------------------------------------------------- hooks


def test_application_hooks_plain_and_async() -> None:
    seen: list[object] = []

    async def up(server: propylon.ServerInfo) -> None:
        seen.append(server)

    app = propylon.Application(on_startup=up, on_shutdown=lambda: seen.append("down"))
    declared = read_application(app)
    assert declared.startup is not None and declared.shutdown is not None
    server = propylon.ServerInfo("propylon", "0", frozenset({"wsgi"}), frozenset(), 0, 1, {})
    started = declared.startup(server)
    assert inspect.iscoroutine(started) and seen == []  # nothing ran before it is awaited
    asyncio.run(started)
    assert declared.shutdown() is None
    assert seen == [server, "down"]
    assert propylon.Application().startup(server) is None


def test_server_config_is_read_only() -> None:
    given = {"debug": True}
    server = propylon.ServerInfo("propylon", "0", frozenset({"wsgi"}), frozenset(), 0, 1, given)
    given["debug"] = False
    assert server.config["debug"] is True
    with pytest.raises(TypeError):
        server.config["debug"] = False  # type: ignore[index]
