"""The sandbox's own endpoints under ``/_sandbox/``: what it received, its behaviour, a page.

GET    /_sandbox/                      a page of the messages received, newest first
GET    /_sandbox/messages[?provider=]  {"messages": [...]}, oldest first
GET    /_sandbox/requests[?provider=]  {"requests": [{"provider", "at", "status"}, ...]}
DELETE /_sandbox/messages, POST /_sandbox/reset   forget everything, behaviour too (204)
GET    /_sandbox/health                {"ok": true}
GET|PUT /_sandbox/behaviour/<provider> read or replace a provider's behaviour (JSON object)
GET|PUT /_sandbox/events               the event webhooks' settings (merged) and what was
                                       posted (see ``events``)
POST   /_sandbox/inbound/<provider>    post a mail (JSON, ``inbound.MAIL_FIELDS``, with "times")
                                       to the service as the provider would; the answers
GET    /_sandbox/tally                 counts of everything taken and posted, however little
                                       is kept (see ``store.Tally``)
GET|PUT /_sandbox/keep                 {"keep": N}: keep only the newest N messages, requests
                                       and event posts (null: all)
GET    /_sandbox/sns/cert.pem          the certificate of the SNS messages' signatures (``sns``)
GET    /_sandbox/sns/confirm           an SNS subscription's SubscribeURL: records the GET
"""

import html
import json

from werkzeug.routing import Rule

from devkit.sandbox import inbound, sns
from devkit.sandbox.events import shown
from devkit.sandbox.store import PROVIDERS
from devkit.sandbox.wire import HTML, Answer, json_answer

PAGE_LIMIT = 200  # the browser page shows only the newest messages
CONFIRMED = b"<ConfirmSubscriptionResponse/>"  # SNS answers its ConfirmSubscription in XML

RULES = [
    Rule("/_sandbox/", endpoint="page", methods=["GET"]),
    Rule("/_sandbox/messages", endpoint="messages", methods=["GET", "DELETE"]),
    Rule("/_sandbox/requests", endpoint="requests", methods=["GET"]),
    Rule("/_sandbox/health", endpoint="health", methods=["GET"]),
    Rule("/_sandbox/reset", endpoint="reset", methods=["POST"]),
    Rule("/_sandbox/behaviour/<provider>", endpoint="behaviour", methods=["GET", "PUT"]),
    Rule("/_sandbox/events", endpoint="events", methods=["GET", "PUT"]),
    Rule("/_sandbox/inbound/<provider>", endpoint="inbound", methods=["POST"]),
    Rule("/_sandbox/tally", endpoint="tally", methods=["GET"]),
    Rule("/_sandbox/keep", endpoint="keep", methods=["GET", "PUT"]),
    Rule(sns.CERT_PATH, endpoint="sns_cert", methods=["GET"]),
    Rule(sns.CONFIRM_PATH, endpoint="sns_confirm", methods=["GET"]),
]


def serve(store, request, endpoint, values, poster) -> Answer:
    """Answer one /_sandbox/ request routed to ``endpoint``."""
    provider = request.args.get("provider")
    if provider is not None and provider not in PROVIDERS:
        return json_answer(400, {"error": f"unknown provider {provider!r}"})
    if endpoint == "reset" or (endpoint == "messages" and request.method == "DELETE"):
        store.reset()
        poster.reset()
        return Answer(status=204)
    if endpoint == "events":
        return _events(store, request, poster)
    if endpoint == "inbound":
        return _inbound(store, request, poster, values["provider"])
    if endpoint == "tally":
        return json_answer(200, tally(store, poster))
    if endpoint == "keep":
        return _keep(store, request, poster)
    if endpoint == "sns_cert":
        return Answer(poster.signer.certificate_pem, 200, content_type="application/x-pem-file")
    if endpoint == "sns_confirm":
        poster.signer.confirm(request.args.get("TopicArn"), request.args.get("Token"))
        return Answer(CONFIRMED, 200, content_type="text/xml")
    if endpoint in ("messages", "requests"):
        return json_answer(200, {endpoint: store.snapshot(endpoint, provider)})
    if endpoint == "health":
        return json_answer(200, {"ok": True})
    if endpoint == "page":
        return Answer(_page(store.snapshot("messages")), 200, content_type=HTML)
    return _behaviour(store, request, values["provider"])


def _behaviour(store, request, provider) -> Answer:
    """GET or PUT (replace) one provider's behaviour."""
    if provider not in PROVIDERS:
        return json_answer(404, {"error": f"unknown provider {provider!r}"})
    if request.method == "PUT":
        try:
            behaviour = json.loads(request.get_data() or b"{}")
            if not isinstance(behaviour, dict):
                raise ValueError("behaviour must be a JSON object")
            store.set_behaviour(provider, behaviour)
        except ValueError as exc:
            return json_answer(400, {"error": str(exc)})
    return json_answer(200, store.behaviour(provider))


def _events(store, request, poster) -> Answer:
    """GET or PUT (merge) the event webhooks' settings; with what was posted."""
    if request.method == "PUT":
        try:
            settings = json.loads(request.get_data() or b"{}")
            if not isinstance(settings, dict):
                raise ValueError("the event settings must be a JSON object")
            store.configure_events(settings)
        except ValueError as exc:
            return json_answer(400, {"error": str(exc)})
    return json_answer(
        200, {"settings": shown(store.event_settings()), "posted": poster.snapshot()}
    )


def _inbound(store, request, poster, provider) -> Answer:
    """Post the mail of the JSON body to the service as ``provider``; its answers."""
    try:
        mail = json.loads(request.get_data() or b"{}")
        if not isinstance(mail, dict):
            raise ValueError("the mail must be a JSON object")
        times = mail.pop("times", 1)
        if not isinstance(times, int) or not 1 <= times <= 50:
            raise ValueError("times must be a whole number from 1 to 50")
        answers = inbound.post(poster.session, store.event_settings(), provider, mail, times)
    except ValueError as exc:
        return json_answer(400, {"error": str(exc)})
    return json_answer(200, {"posted": answers})


def tally(store, poster) -> dict:
    """What the store counted, with the event posts'."""
    return {**store.counted(), "events": poster.counted()}


def set_keep(store, poster, keep) -> None:
    """Keep only the newest ``keep`` messages, requests and event posts (None: all)."""
    store.set_keep(keep)
    poster.set_keep(keep)


def _keep(store, request, poster) -> Answer:
    """GET or PUT ``{"keep": N}``."""
    if request.method == "PUT":
        try:
            body = json.loads(request.get_data() or b"{}")
            if not isinstance(body, dict) or set(body) != {"keep"}:
                raise ValueError('send {"keep": N}, N a whole number >= 0 or null')
            set_keep(store, poster, body["keep"])
        except ValueError as exc:
            return json_answer(400, {"error": str(exc)})
    return json_answer(200, {"keep": store.counted()["keep"]})


def _page(messages) -> bytes:
    """A small auto-refreshing HTML page of received messages, newest first."""
    esc = html.escape
    rows = []
    for m in reversed(messages[-PAGE_LIMIT:]):
        cells = (
            m["received_at"],
            m["provider"],
            m["from"],
            ", ".join(m["to"]),
            m["subject"] or "",
            m["id"],
        )
        rows.append("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in cells) + "</tr>")
    shown = f"newest {PAGE_LIMIT} of " if len(messages) > PAGE_LIMIT else ""
    doc = f"""<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>Mail sandbox</title>
<style>body{{font-family:sans-serif}}td,th{{padding:2px 8px;text-align:left}}
tr:nth-child(even){{background:#f3f3f3}}</style></head>
<body><h1>Mail sandbox</h1>
<p>{shown}{len(messages)} message(s) received. JSON: <a href="/_sandbox/messages">messages</a>,
<a href="/_sandbox/requests">requests</a>.</p>
<table><tr><th>time (UTC)</th><th>provider</th><th>from</th><th>to</th><th>subject</th>
<th>message id</th></tr>
{"".join(rows)}
</table></body></html>
"""
    return doc.encode()
