"""``governor-stub audit verify [--db URL] [--data-dir DIR]``: check the audit log chain.

Exit status: 0 intact, 1 tampering found (each problem printed, naming the entry),
2 cannot check (no database, no key).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from sqlalchemy.exc import SQLAlchemyError

from backend_stub.components.security import (
    SECRET_FILE,
    AuditLog,
    SqlAuditStore,
    derive_key,
)
from backend_stub.db import Database
from backend_stub.settings import StubSettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="governor-stub audit",
                                     description="Inspect the stub's tamper-evident audit log.")
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="find any edited, inserted or deleted entry")
    verify.add_argument("--db", help="database URL (default: GOVSTUB_DB_URL or the data dir)")
    verify.add_argument("--data-dir", type=Path, help="where the generated secret.key lives")
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = _parser().parse_args(list(argv) if argv is not None else None)
    overrides: dict[str, object] = {}
    if args.db:
        overrides["db_url"] = args.db
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    settings = StubSettings(**overrides)  # type: ignore[arg-type]
    if settings.secret_key is not None:
        secret = settings.secret_key.get_secret_value().encode()
    else:
        key_file = settings.data_dir / SECRET_FILE
        if not key_file.exists():
            print(f"cannot verify: no GOVSTUB_SECRET_KEY and no {key_file}; point --data-dir "
                  "at the stub's data directory", file=out)
            return 2
        secret = key_file.read_bytes().strip()
    db = Database(settings.database_url)
    try:
        report = AuditLog(derive_key(secret, "audit-log"), SqlAuditStore(db)).verify()
    except SQLAlchemyError as exc:
        print(f"cannot verify: the audit log in {settings.database_url!r} cannot be read "
              f"({type(exc).__name__}); check --db", file=out)
        return 2
    finally:
        db.dispose()
    if report.ok:
        print(f"audit log intact: {report.entries_checked} entries verified", file=out)
        return 0
    print(f"audit log TAMPERED: {len(report.problems)} problem(s) in "
          f"{report.entries_checked} entries", file=out)
    for problem in report.problems:
        print(f"  - {problem}", file=out)
    return 1
