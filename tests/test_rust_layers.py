"""scripts/rust_layers.py on small synthetic crates: what it reports and what it lets pass."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support import REPO

SCRIPT = REPO / "scripts" / "rust_layers.py"


def crate(root: Path, files: dict[str, str]) -> Path:
    src = root / "src"
    for name, text in files.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return src


def run(src: Path) -> tuple[int, list[str]]:
    result = subprocess.run([sys.executable, str(SCRIPT), str(src)], capture_output=True, text=True, check=False)
    return result.returncode, result.stdout.splitlines()[:-1]  # without the summary line


LAYERED = {
    "lib.rs": "mod proto;\nmod runtime;\nmod py;\nuse pyo3::prelude::*;\n",
    "proto/mod.rs": "pub(crate) mod head;\npub(crate) mod body;\n",
    "proto/head.rs": "pub(crate) struct Head;\n",
    "proto/body.rs": "use super::head::Head;\n",
    "runtime/mod.rs": "pub(crate) mod conn;\n",
    "runtime/conn.rs": "use crate::proto::{head::Head, body};\nuse tokio::net::TcpStream;\n",
    "py/mod.rs": "use crate::runtime::conn;\nuse pyo3::types::PyDict;\n",
}


def test_a_layered_crate_passes(tmp_path):
    code, findings = run(crate(tmp_path, LAYERED))
    assert (code, findings) == (0, [])


def test_a_cycle_between_two_files_is_found(tmp_path):
    files = dict(LAYERED, **{"proto/head.rs": "use crate::proto::body::Body;\npub(crate) struct Head;\n"})
    code, findings = run(crate(tmp_path, files))
    assert code == 1
    assert findings == ["import cycle of 2 files: proto/body.rs, proto/head.rs"]


def test_a_cycle_through_three_files_and_a_use_group_is_one_finding(tmp_path):
    files = dict(
        LAYERED,
        **{
            "runtime/mod.rs": "pub(crate) mod a;\npub(crate) mod b;\npub(crate) mod c;\n",
            "runtime/a.rs": "use crate::runtime::{b::B, c as see};\n",
            "runtime/b.rs": "pub(crate) fn f() { crate::runtime::c::g() }\n",
            "runtime/c.rs": "use super::{\n    a::A,\n};\n",
        },
    )
    code, findings = run(crate(tmp_path, files))
    assert code == 1
    assert findings == ["import cycle of 3 files: runtime/a.rs, runtime/b.rs, runtime/c.rs"]


def test_comments_strings_and_inline_test_modules_are_not_edges(tmp_path):
    files = dict(
        LAYERED,
        **{
            # The inline module's `super` is body.rs itself, not proto/mod.rs.
            "proto/head.rs": """\
                // use crate::proto::body;
                /* crate::proto::body::Body /* nested */ crate::proto::body */
                const NOTE: &str = "crate::proto::body::Body";
                const RAW: &str = r#"crate::proto::body "quoted""#;
                const QUOTE: char = '"';
                pub(crate) struct Head<'a>(&'a str);
                #[cfg(test)]
                mod tests {
                    use super::*;
                    fn f() { super::Head(""); }
                }
                """,
            "proto/mod.rs": "pub(crate) mod head;\npub(crate) mod body;\npub(crate) use self::body::Body;\n",
            "proto/body.rs": "use super::head::Head;\npub(crate) struct Body;\n",
        },
    )
    code, findings = run(crate(tmp_path, files))
    assert (code, findings) == (0, [])


def test_upward_imports_are_found(tmp_path):
    files = dict(
        LAYERED,
        **{
            "proto/body.rs": "use crate::runtime::conn;\n",
            "runtime/conn.rs": "fn f() { crate::py::g(); }\n",
            "py/mod.rs": "pub(crate) fn g() {}\n",
        },
    )
    code, findings = run(crate(tmp_path, files))
    assert code == 1
    assert findings == [
        "upward import: proto/body.rs -> runtime/conn.rs (proto must not use runtime)",
        "upward import: runtime/conn.rs -> py/mod.rs (runtime must not use py)",
    ]


def test_libraries_in_the_wrong_layer_are_found(tmp_path):
    files = dict(
        LAYERED,
        **{
            "proto/head.rs": "use tokio::io::AsyncRead;\nfn f() { ::hyper::body::Incoming; }\n"
            "use crate::runtime_free::h2::Frame; // a module named h2 is not the crate\n",
            "proto/body.rs": "use rustls::ServerConfig;\n",
            "runtime/conn.rs": "use pyo3::Python;\n",
        },
    )
    code, findings = run(crate(tmp_path, files))
    assert code == 1
    assert findings == [
        "wrong layer: proto/body.rs uses rustls",
        "wrong layer: proto/head.rs uses hyper",
        "wrong layer: proto/head.rs uses tokio",
        "wrong layer: runtime/conn.rs uses pyo3",
    ]
