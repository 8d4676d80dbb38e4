"""A real PostgreSQL server for the tests: Debian's package, a fresh cluster on a free port.

initdb refuses to run as root: as root, the cluster belongs to the `postgres` user the
package creates. Nothing is set up by hand, and nothing outlives the test session.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from harness.sipp import free_port

__all__ = ["PostgresServer", "postgres_bin"]


def postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


class PostgresServer:
    def __init__(self, *, fsync: bool = False) -> None:
        bindir = postgres_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL is missing: apt-get install postgresql")
        self.bindir = bindir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="callgate-pg-"))
        self.data = self.dir / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._databases = 0
        # Tests do not need durability on disk; a capacity benchmark does.
        self.fsync = fsync

    @property
    def admin_url(self) -> str:
        return f"postgresql://callgate@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        subprocess.run([*self._as, *command], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)  # fmt: skip

    def start(self) -> None:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "callgate",
                  "-A", "trust", "--no-sync", "-E", "UTF8")  # fmt: skip
        self.resume()

    def pause(self) -> None:
        """Stop the server, keeping its data: an outage."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"),
            "-w", "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
            f" -c fsync={'on' if self.fsync else 'off'} -c max_connections=200",
            "start",
        )  # fmt: skip

    def standby(self) -> PostgresServer:
        """A streaming-replication standby of this server, on its own port, started."""
        other = PostgresServer(fsync=self.fsync)
        self._run(str(self.bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.port),
                  "-U", "callgate", "-D", str(other.data), "-R", "-X", "stream",
                  "--checkpoint=fast")  # fmt: skip
        other.resume()
        other._databases = self._databases
        return other

    def promote(self) -> None:
        """Make this standby the primary (what a failover manager does)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-w", "promote")

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        self._databases += 1
        name = f"callgate_{self._databases}"
        self._run(str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port),
                  "-U", "callgate", "-d", "postgres", "-c", f"CREATE DATABASE {name}")  # fmt: skip
        return f"postgresql://callgate@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run([*self._as, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m",
                        "immediate", "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(0.1)
        shutil.rmtree(self.dir, ignore_errors=True)
