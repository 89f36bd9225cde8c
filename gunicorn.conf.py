# Production gunicorn settings of the API (and admin):
#     gunicorn -c gunicorn.conf.py wsgi:app   (wsgi.py also checks the database schema)
# Override with environment variables: BIND, WEB_CONCURRENCY (processes),
# GUNICORN_WORKER_CONNECTIONS, GUNICORN_LOG_LEVEL, GUNICORN_CONTROL_SOCKET (see below).

# gevent patches the standard library before anything imports it: the hooks below import the
# app's modules in the master, whose imports (ssl among them) the workers inherit when forked,
# and a module patched after its import may misbehave (gevent's MonkeyPatchWarning).
from gevent import monkey

monkey.patch_all()

import os
import shutil
import sys
import tempfile

bind = os.environ.get("BIND", "127.0.0.1:5000")

# gevent workers: each connection is a greenlet, parked in the event loop while its client is
# slow to send, so slow or idle clients (slowloris) hold a few kilobytes each instead of one of
# a few threads. With threads, a handful of connections that sent half a header line held every
# thread of every process, and even /healthz went unanswered. psycopg2 waits for PostgreSQL
# cooperatively in them (mailer/green.py, set up in post_fork below), so a request waiting on
# the database lets the process serve others, as a thread did.
worker_class = "gevent"
# A process per core (a fixed default: a container's CPU quota is not what os.cpu_count()
# says; on a bigger host set WEB_CONCURRENCY to its cores). Requests spend part of their time in
# Python and part waiting on PostgreSQL; more processes than cores only queue for them.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Connections each process holds at most, idle, slow and busy together; the app's SQLAlchemy
# pool (5 connections + 5 overflow per process) bounds how many of them use the database at
# once, the others waiting their turn for a connection.
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "1000"))
# Requests each process runs at once (mailer/green.py's ActiveLimit); the rest of its
# connections wait, parked, for a turn.
active_requests = int(os.environ.get("GUNICORN_ACTIVE_REQUESTS", "4"))

# Seconds an idle keep-alive connection stays open (clients reuse them). In a gevent worker it
# is also the header timeout: a request line and headers not received within it (slowloris,
# the first request of a connection included) and the connection is closed.
keepalive = 5
backlog = 2048
timeout = 30  # a worker silent this long is restarted
graceful_timeout = 30  # on SIGTERM, requests in progress get this long to finish

# Recycle workers now and then (with jitter so they do not restart together), which bounds any
# slow leak in a dependency.
max_requests = 100_000
max_requests_jitter = 10_000

accesslog = None  # no line per request (put one in the reverse proxy instead)
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# gunicorn's lines and the app's, on stderr in the format of LOG_FORMAT (text, or json).
logger_class = "mailer.telemetry.logs.GunicornLogger"

# Request limits. gunicorn refuses a request over them itself, before the app sees it, with an
# HTML page and the connection closed (no setting makes that JSON; see docs/operations.md):
# 414 for a long request line, 431 for a long header or too many, 400 for a malformed one.
limit_request_line = 4094  # bytes of "GET <url> HTTP/1.1": our longest URLs (admin) use <1 kB
limit_request_fields = 50  # header lines: a browser sends ~20, and a proxy adds a few
limit_request_field_size = 8190  # bytes per header line: room for a Cookie line, as nginx's 8k

# gunicorn's control socket (for gunicornc) is by default one path per user,
# $XDG_RUNTIME_DIR/gunicorn.ctl or ~/.gunicorn/gunicorn.ctl, so each new instance on a host took
# it over and deleted it on exit. Off, unless GUNICORN_CONTROL_SOCKET names one for this
# instance.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not control_socket


def on_starting(server):
    """Refuse to serve in protected mode (no API_KEYS or ADMIN_PASSWORD) beyond loopback, then
    prepare the metrics directory.

    Behind a proxy every request arrives from loopback, so only credentials keep a reachable
    address safe (see mailer/api/auth.py).
    """
    from mailer.api.auth import check_bind
    from mailer.config import load_config

    config = load_config()
    for address in server.cfg.bind:
        if address.startswith(("unix:", "fd://")):
            continue
        host = (
            address[1:].partition("]")[0]
            if address.startswith("[")
            else address.rpartition(":")[0] or address
        )
        try:
            check_bind(config, host)
        except ValueError as err:
            server.log.error("%s", err)
            sys.exit(2)
    prepare_metrics_dir(server)


# Prometheus metrics (mailer/telemetry/metrics.py): each worker process counts in files of its own
# in
# PROMETHEUS_MULTIPROC_DIR, and /metrics sums them all. The directory must be empty at start and
# set before any process imports prometheus_client (which is why nothing here imports it at the
# top): the workers inherit it from this master.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_DIR_PREFIX = "mail-service-metrics-"  # then the master's pid: mail-service-metrics-<pid>-
_made_metrics_dir = []  # the directory this master created, removed on exit


def prepare_metrics_dir(server):
    """Use $PROMETHEUS_MULTIPROC_DIR, emptied of a previous run's files, or a fresh temporary
    directory, removed again on exit (and by the next start if this master was killed)."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            if name.endswith(".db"):
                os.remove(os.path.join(path, name))
    else:
        remove_orphaned_metrics_dirs()
        path = tempfile.mkdtemp(prefix=f"{METRICS_DIR_PREFIX}{os.getpid()}-")
        os.environ[MULTIPROC_ENV] = path
        _made_metrics_dir.append(path)
    server.log.info("metrics of the worker processes in %s", path)


def remove_orphaned_metrics_dirs():
    """Remove the temporary metrics directories of masters that no longer run (killed with
    SIGKILL, they could not remove their own)."""
    for name in os.listdir(tempfile.gettempdir()):
        pid = name[len(METRICS_DIR_PREFIX) :].partition("-")[0]
        if name.startswith(METRICS_DIR_PREFIX) and pid.isdigit() and not _runs(int(pid)):
            shutil.rmtree(os.path.join(tempfile.gettempdir(), name), ignore_errors=True)


def _runs(pid):
    """Whether process ``pid`` exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def post_fork(server, worker):
    """In each new gevent worker, before it loads the app: psycopg2 waits cooperatively."""
    if "gevent" in server.cfg.worker_class_str:
        from mailer.green import make_psycopg2_green

        make_psycopg2_green()


def post_worker_init(worker):
    """The app is loaded: collect what loading it left behind, then take the rest out of the
    garbage collector's sight (``gc.freeze``).

    Flask-Admin, SQLAlchemy's models and the rest are some 100,000-120,000 objects that live as
    long as the process; left in the collector's generations, every full collection walked
    them all again, and a request that builds many objects (a batch of 1,000 mails, a SendGrid
    batch of 1,000 events) set one off every few requests, each walking them all again
    (BENCHMARKS.md, "Measurements behind the code", has what that cost).
    """
    import gc

    if "gevent" in worker.cfg.worker_class_str:
        from mailer.green import ActiveLimit

        worker.wsgi = ActiveLimit(worker.wsgi, active_requests)
    gc.collect()
    gc.freeze()


def worker_exit(server, worker):
    """A worker ends: hand what ``gc.freeze`` hid back to the collector and collect it now.

    Left to the interpreter's shutdown, the collection runs after modules are torn down: a
    logging handler's clean-up then takes logging's lock through gevent's patched threading,
    gone by then, and prints a traceback on every stop.
    """
    import gc

    gc.unfreeze()
    gc.collect()


def child_exit(server, worker):
    """A worker process ended: drop its live gauges (its counters keep counting in the sum)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the metrics directory this master made."""
    for path in _made_metrics_dir:
        shutil.rmtree(path, ignore_errors=True)
