"""A throwaway PostgreSQL server from the local binaries, for tests that stop the database.

Stopping the machine's shared server would break every other test, so outage tests start their
own cluster in a temporary folder on a free port. PostgreSQL refuses to run as root, so as root
the cluster is owned by and run as the ``postgres`` user.
"""

import glob
import os
import shutil
import socket
import subprocess
import tempfile


def find_bin_dir():
    """The folder of pg_ctl and initdb: $PG_BIN, the PATH, or Debian's versioned folders."""
    if os.environ.get("PG_BIN"):
        return os.environ["PG_BIN"]
    on_path = shutil.which("pg_ctl")
    if on_path:
        return os.path.dirname(on_path)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(found[-1]) if found else None


def free_port():
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThrowawayPostgres:
    """initdb, start, stop and delete a private PostgreSQL cluster."""

    def __init__(self):
        self.bin_dir = find_bin_dir()
        self.port = free_port()
        self.folder = tempfile.mkdtemp(prefix="mail-pg-")
        self.data = os.path.join(self.folder, "data")
        self.as_postgres = os.geteuid() == 0

    @property
    def url(self):
        """A DATABASE_URL for the cluster's ``postgres`` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command):
        """Run a PostgreSQL binary, as the postgres user when we are root."""
        argv = [os.path.join(self.bin_dir, command[0]), *command[1:]]
        if self.as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        subprocess.run(argv, check=True, capture_output=True, timeout=60)

    def init(self):
        """Create the cluster with trust authentication for loopback."""
        if self.as_postgres:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        return self

    def start(self):
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", self.data, "-o", options, "-l",
                  os.path.join(self.folder, "log"), "-w", "start")

    def stop(self):
        """Stop the server at once (fast mode: open sessions are cut)."""
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def destroy(self):
        """Stop the server if it runs, and delete its folder."""
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.folder, ignore_errors=True)
