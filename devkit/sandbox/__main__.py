"""Command line: serve the sandbox until SIGTERM or Ctrl-C.

    scripts/sandbox --port 8025 [--host 127.0.0.1] [--latency-ms 0] [--mailgun-key K]
                    [--sendgrid-key K] [--ses-access-key-id ID --ses-secret-access-key S]
                    [--postmark-token T] [--events-url URL] [--allow-remote]
                    [--allow-host NAME ...] [--smtp-port 2525] [--keep N]

The keys default to $SANDBOX_MAILGUN_API_KEY, $SANDBOX_SENDGRID_API_KEY,
$SANDBOX_SES_ACCESS_KEY_ID and $SANDBOX_SES_SECRET_ACCESS_KEY, and
$SANDBOX_POSTMARK_SERVER_TOKEN; unset, any non-empty key (for SES, any SigV4 signature) is
accepted. With --events-url (or $SANDBOX_EVENTS_URL) it posts signed delivery events to that
service, with $SANDBOX_MAILGUN_WEBHOOK_SIGNING_KEY and $SANDBOX_SENDGRID_WEBHOOK_PRIVATE_KEY,
SES's to the SNS topic $SANDBOX_SES_TOPIC_ARN, and Postmark's with the basic auth
$SANDBOX_POSTMARK_WEBHOOK_USERNAME and $SANDBOX_POSTMARK_WEBHOOK_PASSWORD (see events.py);
POST /_sandbox/inbound/<provider> posts a mail to that service as the provider received it
(SendGrid's with $SANDBOX_SENDGRID_INBOUND_USERNAME and ..._PASSWORD; see inbound.py). It
answers only requests whose Host is a loopback name or address, --host, or an --allow-host name
(anything else is DNS rebinding). With --smtp-port it also serves an SMTP relay with STARTTLS
and AUTH (devkit/sandbox/smtp.py), taking only $SANDBOX_SMTP_USERNAME and
$SANDBOX_SMTP_PASSWORD if set; it prints the CA file to give the mail service as SMTP_CA_FILE.
With --keep N it keeps only the newest N messages, requests and event posts, for long runs;
GET /_sandbox/tally counts them all.
"""

import argparse
import ipaddress
import os
import signal
import socket
import sys
import threading

from devkit.sandbox.server import Sandbox


def _is_loopback(host: str) -> bool:
    """True if every address the host name resolves to is a loopback address."""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    addrs = {info[4][0].split("%")[0] for info in infos}
    return bool(addrs) and all(ipaddress.ip_address(a).is_loopback for a in addrs)


def _parse_args(argv) -> argparse.Namespace:
    """Command-line options (keys default to the SANDBOX_*_API_KEY variables)."""
    p = argparse.ArgumentParser(
        prog="scripts/sandbox",
        description="Local Mailgun, SendGrid and Postmark sandbox for tests.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8025, help="0 picks a free port")
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--mailgun-key", default=os.environ.get("SANDBOX_MAILGUN_API_KEY"))
    p.add_argument("--sendgrid-key", default=os.environ.get("SANDBOX_SENDGRID_API_KEY"))
    p.add_argument("--ses-access-key-id", default=os.environ.get("SANDBOX_SES_ACCESS_KEY_ID"))
    p.add_argument(
        "--ses-secret-access-key", default=os.environ.get("SANDBOX_SES_SECRET_ACCESS_KEY")
    )
    p.add_argument("--postmark-token", default=os.environ.get("SANDBOX_POSTMARK_SERVER_TOKEN"))
    p.add_argument(
        "--events-url",
        default=os.environ.get("SANDBOX_EVENTS_URL"),
        help="post signed delivery events to this service (e.g. http://127.0.0.1:5000)",
    )
    p.add_argument(
        "--allow-remote", action="store_true", help="permit a non-loopback --host (test tool!)"
    )
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a Host name to answer besides loopback and --host (repeatable)",
    )
    p.add_argument(
        "--smtp-port",
        type=int,
        default=None,
        help="also serve an SMTP relay (STARTTLS, AUTH) on this port; 0 picks a free port",
    )
    p.add_argument(
        "--keep",
        type=int,
        default=None,
        metavar="N",
        help="keep only the newest N messages, requests and event posts (GET /_sandbox/tally "
        "counts them all); default: all",
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Serve until SIGTERM/SIGINT; return the exit status."""
    args = _parse_args(argv)
    if not args.allow_remote and not _is_loopback(args.host):
        msg = f"refusing to bind non-loopback host {args.host!r} without --allow-remote"
        print(msg, file=sys.stderr)
        return 2
    events = {
        "url": args.events_url,
        "mailgun_key": os.environ.get("SANDBOX_MAILGUN_WEBHOOK_SIGNING_KEY"),
        "sendgrid_key": os.environ.get("SANDBOX_SENDGRID_WEBHOOK_PRIVATE_KEY"),
        "ses_topic_arn": os.environ.get("SANDBOX_SES_TOPIC_ARN"),
        "postmark_username": os.environ.get("SANDBOX_POSTMARK_WEBHOOK_USERNAME"),
        "postmark_password": os.environ.get("SANDBOX_POSTMARK_WEBHOOK_PASSWORD"),
        "sendgrid_inbound_username": os.environ.get("SANDBOX_SENDGRID_INBOUND_USERNAME"),
        "sendgrid_inbound_password": os.environ.get("SANDBOX_SENDGRID_INBOUND_PASSWORD"),
    }
    sb = Sandbox(
        args.host,
        args.port,
        args.mailgun_key,
        args.sendgrid_key,
        args.latency_ms,
        events,
        allowed_hosts=args.allow_host,
        ses_access_key_id=args.ses_access_key_id,
        ses_secret_access_key=args.ses_secret_access_key,
        smtp=args.smtp_port is not None,
        smtp_port=args.smtp_port or 0,
        smtp_username=os.environ.get("SANDBOX_SMTP_USERNAME"),
        smtp_password=os.environ.get("SANDBOX_SMTP_PASSWORD"),
        postmark_token=args.postmark_token,
        keep=args.keep,
    )
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    try:
        sb.start()
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"sandbox listening on {sb.url} (watch mail at {sb.url}/_sandbox/)", flush=True)
    if args.smtp_port is not None:
        print(
            f"SMTP relay on {args.host}:{sb.smtp_port} (STARTTLS; SMTP_CA_FILE={sb.smtp_ca_file})",
            flush=True,
        )
    while not done.wait(1.0):  # a timed wait keeps signal delivery prompt everywhere
        pass
    sb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
