"""A throwaway PostgreSQL cluster for tests: initdb into a temp dir owned by the `postgres` user
(servers refuse to run as root), a free port, loopback only, password auth; stopped afterwards."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_ALL

USER, PASSWORD, DATABASE = "segsql", "s3cret-pw", "segsql_test"


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


def require_postgres() -> None:
    if _binary("initdb") is None or _binary("pg_ctl") is None:
        if REQUIRE_ALL:
            pytest.fail("PostgreSQL is not installed (SEGSQL_REQUIRE_ALL=1): apt-get install postgresql")
        pytest.skip("PostgreSQL is not installed")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        if REQUIRE_ALL:
            pytest.fail("psycopg is not installed (SEGSQL_REQUIRE_ALL=1): pip install 'segsql[postgres]'")
        pytest.skip("psycopg is not installed")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    def __init__(self) -> None:
        require_postgres()
        self.root = Path(tempfile.mkdtemp(prefix="segsql-pg-"))
        os.chmod(self.root, 0o755)
        self.data, self.sockets, self.log = self.root / "data", self.root / "sockets", self.root / "server.log"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0

    def _as_owner(self, *command: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command] if self.as_root else list(command)

    def _run(self, *command: str) -> None:
        done = subprocess.run(self._as_owner(*command), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr or done.stdout}")

    def start(self) -> PostgresServer:
        self.sockets.mkdir()
        password_file = self.root / "password"
        password_file.write_text(PASSWORD)
        if self.as_root:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.sockets, "postgres")
            shutil.chown(password_file, "postgres")
        self._run(str(_binary("initdb")), "-D", str(self.data), "-U", USER, f"--pwfile={password_file}",
                  "-A", "scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync")
        self.resume()
        import psycopg

        with psycopg.connect(**self.params(dbname="postgres"), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {DATABASE}")
        return self

    def resume(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.sockets} "
                   "-c fsync=off")
        self._run(str(_binary("pg_ctl")), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(_binary("pg_ctl")), "-D", str(self.data), "-m", mode, "-w", "stop")

    def cleanup(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def params(self, dbname: str = DATABASE) -> dict[str, object]:
        return {"host": "127.0.0.1", "port": self.port, "user": USER, "password": PASSWORD, "dbname": dbname}

    def config_yaml(self, password_env: str = "SEGSQL_TEST_PGPASSWORD") -> str:
        return (f"connection:\n  type: postgres\n  host: 127.0.0.1\n  port: {self.port}\n  dbname: {DATABASE}\n"
                f"  user: {USER}\n  password_env: {password_env}\n")


@contextlib.contextmanager
def running_server() -> Iterator[PostgresServer]:
    """A started server, cleaned up afterwards (for a module-scoped fixture)."""
    require_postgres()
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.cleanup()


def copy_duckdb_tables(duckdb_path: Path, server: PostgresServer, tables: list[str], dbname: str = DATABASE) -> None:
    """Load DuckDB tables into Postgres with the same column types (built as sqlglot trees)."""
    import duckdb
    import psycopg
    from sqlglot import exp

    source = duckdb.connect(str(duckdb_path), read_only=True)
    try:
        with psycopg.connect(**server.params(dbname), autocommit=True) as target:
            for table in tables:
                described = source.execute(f"DESCRIBE {table}").fetchall()
                columns = [exp.ColumnDef(this=exp.to_identifier(name),
                                         kind=exp.DataType.build(str(kind), dialect="duckdb"))
                           for name, kind, *_ in described]
                target.execute(exp.Drop(tables=[exp.to_table(table)], kind="TABLE", exists=True).sql("postgres"))
                target.execute(exp.Create(this=exp.Schema(this=exp.to_table(table), expressions=columns),
                                          kind="TABLE").sql("postgres"))
                rows = source.execute(f"SELECT * FROM {table}").fetchall()
                with target.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
    finally:
        source.close()
