"""Interleaved A/B runs of two Propylon builds: what one change costs or gains.

    python3 bench/ab.py --a /tmp/venv-main --b .venv --scenarios hello,echo64k,h2,tls-hello --rounds 3

`--a` and `--b` are virtual environments with Propylon installed (each has
`bin/propylon`). For every scenario, the two builds run one after the other,
A then B, `--rounds` times, with the same server command, load generator and
CPU pinning as `bench.py` (server on CPU 0, load on CPU 1). Alternating
spreads the machine's drift over both builds, which a full bench run of
each, an hour apart, does not. The report gives each run, the medians,
B/A, the server's CPU time per request (steadier than the rate when other
work shares the machine), and the CPU time other processes took during
each measurement (a run disturbed by other work is marked).

The WebSocket scenarios (`--scenarios ws`, or any of them) run bench.py's
`propylon-async` server, or `propylon-event` with `--websocket-handler event`.

The peers are not run: this compares Propylon with itself. Needs wrk,
h2load and openssl, as bench.py does (ws-load, built by bench.py, for the
WebSocket scenarios).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import bench


def propylon_server(name: str, venv: Path, template_name: str = bench.REFERENCE, workers: int = 1) -> bench.Server:
    """bench.py's Propylon command (of server `template_name`), with the build from `venv`;
    without `--workers` for one worker, so that a build from before the option runs too."""
    template = bench.SERVER_BY_NAME[template_name]
    command = template.command.replace("{venv}", str(venv))
    if workers == 1:
        command = command.replace(" --workers {workers}", "")
    static = template.static.replace("{venv}", str(venv))
    return bench.Server(name, command, template.scenarios, tls=template.tls, static=static)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", type=Path, required=True, help="venv of build A (the baseline)")
    parser.add_argument("--b", type=Path, required=True, help="venv of build B (the change)")
    parser.add_argument("--scenarios", default="hello,echo64k,h2,tls-hello")
    parser.add_argument("--rounds", type=int, default=3, help="A/B pairs per scenario (default 3)")
    parser.add_argument("--duration", type=int, default=4, help="seconds per measurement (default 4)")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of load before each, not counted")
    parser.add_argument(
        "--websocket-handler",
        choices=("async", "event"),
        default="async",
        help="Propylon's handler style in the WebSocket scenarios (default async)",
    )
    opts = parser.parse_args(argv)
    names = [
        name for group in opts.scenarios.split(",") if group for name in bench.SCENARIO_GROUPS.get(group, (group,))
    ]
    scenarios = [bench.SCENARIO_BY_NAME[name] for name in names]
    websocket = f"propylon-{opts.websocket_handler}"

    def builds_for(scenario: bench.Scenario) -> list[bench.Server]:
        template = websocket if scenario.websocket else bench.REFERENCE
        return [
            propylon_server(build, venv.resolve(), template, scenario.workers)
            for build, venv in (("A", opts.a), ("B", opts.b))
        ]

    if not scenarios:
        parser.error("--scenarios names no scenario")
    no_rate = [scenario.name for scenario in scenarios if scenario.kind != "load"]
    if no_rate:
        parser.error(
            f"{', '.join(no_rate)}: memory and start-up scenarios have no rate to compare (bench.py measures them)"
        )
    for server in builds_for(scenarios[0]):
        if not Path(server.command.split()[0]).exists():
            parser.error(f"{server.command.split()[0]} does not exist")
    bench.RESULTS.mkdir(exist_ok=True)
    bench.kill_leftovers()
    bench.ensure_tools(any(s.tls for s in scenarios))
    data_dir = Path(tempfile.mkdtemp(prefix="propylon-ab-"))
    tls = bench.make_certificate(data_dir) if any(s.tls for s in scenarios) else None
    env = bench.server_environment(data_dir)  # the file scenarios' files, as bench.py writes them
    log_dir = data_dir / "logs"
    log_dir.mkdir()
    run_opts = SimpleNamespace(duration=opts.duration, warmup=opts.warmup)
    lines = []
    try:
        for scenario in scenarios:
            rates: dict[str, list[float]] = {"A": [], "B": []}
            costs: dict[str, list[float]] = {"A": [], "B": []}
            for round_ in range(opts.rounds):
                for server in builds_for(scenario):
                    record = bench.measure(server, scenario, round_, run_opts, env, log_dir, tls)
                    if not record.get("ok"):
                        print(f"{scenario.name} {server.name}: {record.get('error')}", file=sys.stderr)
                        return 1
                    rate = record["mib_s"] if scenario.metric == "MiB/s" else record["rps"]
                    rates[server.name].append(rate)
                    # The server's CPU time per request: steadier than the rate
                    # on a machine where other work takes CPU time.
                    cost = record["server_cpu"] / record["rps"] * 1e6
                    costs[server.name].append(cost)
                    foreign = max(record["foreign_cpu"].values())
                    busy = " (busy machine)" if foreign >= bench.BUSY_MACHINE else ""
                    print(
                        f"{scenario.name:10} {server.name} #{round_ + 1}: {rate:12,.0f} {scenario.metric}"
                        f"  {cost:6.2f} CPU us/request  others' CPU {foreign:.0%}{busy}",
                        flush=True,
                    )
            a, b = statistics.median(rates["A"]), statistics.median(rates["B"])
            ca, cb = statistics.median(costs["A"]), statistics.median(costs["B"])
            lines.append(
                f"{scenario.name:10} A {a:12,.0f}  B {b:12,.0f} {scenario.metric}  B/A {b / a:.3f}"
                f"  (A {min(rates['A']):,.0f}-{max(rates['A']):,.0f}, B {min(rates['B']):,.0f}-{max(rates['B']):,.0f})"
                f"; CPU us/request A {ca:.2f} B {cb:.2f} B/A {cb / ca:.3f}"
            )
    finally:
        bench.kill_all()
    print("\nmedians of", opts.rounds, "interleaved rounds:")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
