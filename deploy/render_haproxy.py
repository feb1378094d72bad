#!/usr/bin/env python3
"""Render deploy/haproxy.cfg for a list of replicas (standard library only).

    python3 deploy/render_haproxy.py --bind 0.0.0.0:8080 --stats 127.0.0.1:8404 \\
        127.0.0.1:8001 127.0.0.1:8002 > haproxy.cfg

Used by deploy/run-replicas.sh and by the test harness (tests/support/replicas.py), so
what is tested is what is deployed.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

TEMPLATE = Path(__file__).resolve().with_name("haproxy.cfg")
_ADDRESS = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")


def render(bind: str, stats: str, replicas: Sequence[str], template: str | None = None) -> str:
    """The configuration: ``bind`` for clients, ``stats`` for the stats page, one server
    ``stubN`` per replica address (``HOST:PORT``)."""
    if not replicas:
        raise ValueError("no replicas given: name at least one HOST:PORT")
    for address in (bind, stats, *replicas):
        if not _ADDRESS.match(address):
            raise ValueError(f"{address!r} is not HOST:PORT; write e.g. 127.0.0.1:8001")
    text = TEMPLATE.read_text() if template is None else template
    servers = "\n".join(f"    server stub{i} {address}"
                        for i, address in enumerate(replicas, 1))
    return (text.replace("{{BIND}}", bind).replace("{{STATS_BIND}}", stats)
            .replace("{{SERVERS}}", servers))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default="127.0.0.1:8080", help="where clients connect")
    parser.add_argument("--stats", default="127.0.0.1:8404", help="the stats page (/stats)")
    parser.add_argument("replicas", nargs="+", metavar="HOST:PORT")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(render(args.bind, args.stats, args.replicas))
    except ValueError as exc:
        print(f"render_haproxy: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
