"""The OpenAPI document: valid, complete, and true to what the API really answers."""

import json
import re
from html.parser import HTMLParser

import pytest
from openapi_spec_validator import validate

import models
from app import create_app
from integration.api.schemas import assert_matches, validator
from mailer import vocabulary
from mailer.api import openapi
from mailer.api.resources import MAX_BATCH
from mailer.config import DEFAULTS
from mailer.validation.headers import FORBIDDEN_IN_HEADERS
from mailer.worker import circuit

MAIL = {
    "from": "Sender <sender@example.com>",
    "to": "rcpt@example.com",
    "subject": "Hello",
    "text": "Plain body",
}
IGNORED_METHODS = {"HEAD", "OPTIONS"}


@pytest.fixture
def spec(client):
    """The document as the API serves it."""
    response = client.get("/api/spec")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def openapi_path(rule):
    """A Werkzeug rule, ``/mail/<string:mail_id>``, as an OpenAPI path, ``/mail/{mail_id}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def api_rules(app):
    """The app's rules outside the admin, the static files, the docs page's assets and the
    browser's favicon request (the admin answers it 204)."""
    return [
        rule
        for rule in app.url_map.iter_rules()
        if not rule.rule.startswith(("/admin", "/static", "/favicon.ico"))
        and not rule.endpoint.startswith(f"{openapi.DOCS_BLUEPRINT}.")
    ]


def documented_codes(spec, path, method):
    """The status codes the document gives for one operation."""
    return set(spec["paths"][path][method]["responses"])


# The document ---------------------------------------------------------------------------------


def test_spec_is_valid_openapi(app, spec):
    validate(spec)
    assert spec["openapi"].startswith("3.")
    assert spec == openapi.build_spec(app.config)
    assert "202" in spec["info"]["description"] and "GET /mail/{id}" in spec["info"]["description"]


def test_every_route_is_documented(app, spec):
    for rule in api_rules(app):
        path = openapi_path(rule.rule)
        assert path in spec["paths"], f"{rule.rule} is not documented"
        for method in rule.methods - IGNORED_METHODS:
            assert method.lower() in spec["paths"][path], f"{method} {rule.rule} undocumented"


def test_every_documented_operation_exists(app, spec):
    served = {}
    for rule in api_rules(app):
        served.setdefault(openapi_path(rule.rule), set()).update(rule.methods)
    for path, item in spec["paths"].items():
        assert {method.upper() for method in item} <= served.get(path, set()), path


def test_mail_endpoints_require_a_key_and_explain_protected_mode(spec):
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert (schemes["apiKeyHeader"]["in"], schemes["apiKeyHeader"]["name"]) == (
        "header",
        "X-API-Key",
    )
    assert "loopback" in schemes["bearerAuth"]["description"]
    for path, method in (("/mail", "post"), ("/mail/{mail_id}", "get")):
        security = spec["paths"][path][method]["security"]
        assert {"bearerAuth": []} in security and {"apiKeyHeader": []} in security
    assert spec["paths"]["/health"]["get"]["security"] == []


def test_schema_validator_is_not_vacuous(spec):
    check = validator(spec, "Error")
    assert not check.is_valid({"success": True, "message": "x", "errors": []})
    assert not check.is_valid({"success": False, "message": "x", "errors": [{"field": 1}]})
    assert not validator(spec, "ProviderAnswer").is_valid(
        {
            "provider": "mailgun",
            "outcome": "sent",
            "status_code": 200,
            "message_id": None,
            "response": None,
            "error": None,
            "duration_ms": 3,
            "at": "yesterday",
        }
    )


def test_enums_and_limits_come_from_the_code(spec):
    schemas = spec["components"]["schemas"]
    assert schemas["Mail"]["properties"]["status"]["enum"] == list(models.STATUSES)
    assert schemas["ProviderAnswer"]["properties"]["outcome"]["enum"] == vocabulary.ANSWER_OUTCOMES
    assert schemas["Attempt"]["properties"]["outcome"]["enum"] == vocabulary.ATTEMPT_OUTCOMES
    assert schemas["ProviderHealth"]["properties"]["circuit"]["enum"] == [
        circuit.CLOSED,
        circuit.OPEN,
        circuit.HALF_OPEN,
    ]
    assert schemas["ProviderHealth"]["properties"]["state"]["enum"] == [
        circuit.CLOSED,
        circuit.OPEN,
        circuit.HALF_OPEN,
        circuit.PAUSED,
    ]
    batch = spec["paths"]["/mail/batch"]["post"]["requestBody"]["content"]["application/json"]
    listed, wrapped = batch["schema"]["oneOf"]
    assert listed["maxItems"] == MAX_BATCH
    assert (
        schemas[wrapped["$ref"].rsplit("/", 1)[1]]["properties"]["mails"]["maxItems"] == MAX_BATCH
    )


# Real answers against the document ------------------------------------------------------------


def test_202_body_and_location_match_the_spec(client, spec):
    response = client.post(
        "/mail", json={**MAIL, "cc": ["a@example.com", "b@example.com"], "html": "<p>Hi</p>"}
    )
    assert response.status_code == 202
    body = response.get_json()
    assert_matches(spec, "Mail", body)
    assert response.headers["Location"] == f"/mail/{body['id']}"
    assert "Location" in spec["paths"]["/mail"]["post"]["responses"]["202"]["headers"]
    polled = client.get(response.headers["Location"])
    assert polled.status_code == 200
    assert_matches(spec, "Mail", polled.get_json())


@pytest.mark.parametrize("encoding", ["data", "multipart"])
def test_form_submissions_match_the_spec(client, spec, encoding):
    fields = {**MAIL, "to": ["one@example.com", "two@example.com"]}
    kwargs = {"data": fields}
    if encoding == "multipart":
        kwargs["content_type"] = "multipart/form-data"
    response = client.post("/mail", **kwargs)
    assert response.status_code == 202, response.get_json()
    assert_matches(spec, "Mail", response.get_json())
    assert response.get_json()["to_address"] == "one@example.com, two@example.com"


def test_delivered_mail_matches_the_spec(client, spec, sandbox, run_worker):
    sandbox.configure("mailgun", status=503)  # a failover: a transient answer, then sent
    mail_id = client.post("/mail", json=MAIL).get_json()["id"]
    run_worker()
    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["status"] == "sent" and len(body["result"]) == 2 and body["attempt_log"]
    assert_matches(spec, "Mail", body)
    for answer in body["result"]:
        assert_matches(spec, "ProviderAnswer", answer)
    for row in body["attempt_log"]:
        assert_matches(spec, "Attempt", row)


def test_400_matches_the_error_schema(client, spec):
    response = client.post("/mail", json={"from": "sender@example.com", "bogus": 1})
    assert response.status_code == 400
    body = response.get_json()
    assert_matches(spec, "Error", body)
    assert {"bogus", "to", "subject", "text"} <= {error["field"] for error in body["errors"]}
    assert "400" in documented_codes(spec, "/mail", "post")


@pytest.mark.parametrize(
    ("request_args", "path", "method", "status"),
    [
        (
            {
                "method": "POST",
                "path": "/mail",
                "json": {},
                "environ_base": {"REMOTE_ADDR": "192.0.2.7"},
            },
            "/mail",
            "post",
            401,
        ),
        (
            {"method": "GET", "path": "/mail/00000000-0000-4000-8000-000000000000"},
            "/mail/{mail_id}",
            "get",
            404,
        ),
        ({"method": "GET", "path": "/mail/not-a-uuid"}, "/mail/{mail_id}", "get", 404),
        ({"method": "DELETE", "path": "/mail"}, "/mail", "post", 405),
        (
            {"method": "POST", "path": "/mail", "data": "hello", "content_type": "text/plain"},
            "/mail",
            "post",
            415,
        ),
    ],
)
def test_errors_match_the_error_schema(client, spec, request_args, path, method, status):
    response = client.open(**request_args)
    assert response.status_code == status
    assert_matches(spec, "Error", response.get_json())
    assert str(status) in documented_codes(spec, path, method)
    if status == 405:
        assert response.headers["Allow"]


def test_413_matches_the_error_schema(app, client, spec):
    app.config["MAX_CONTENT_LENGTH"] = 100
    response = client.post("/mail", json={**MAIL, "text": "x" * 500})
    assert response.status_code == 413
    assert_matches(spec, "Error", response.get_json())
    assert "413" in documented_codes(spec, "/mail", "post")


def test_429_after_wrong_keys_matches_the_spec(settings, spec):
    throttled = create_app({**settings, "API_KEYS": "secret-key", "AUTH_FAILURE_LIMIT": 2})
    client = throttled.test_client()
    wrong = {"Authorization": "Bearer wrong-key"}
    assert [client.post("/mail", json=MAIL, headers=wrong).status_code for _ in range(2)] == [
        401,
        401,
    ]
    for path, method in (("/mail", "post"), ("/mail/batch", "post"), ("/mail/{mail_id}", "get")):
        url = path.replace("{mail_id}", "00000000-0000-4000-8000-000000000000")
        response = client.open(url, method=method.upper(), json=MAIL, headers=wrong)
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) > 0
        assert_matches(spec, "Error", response.get_json())
        assert "429" in documented_codes(spec, path, method)


def test_malformed_multipart_is_a_documented_400(client, spec):
    response = client.post(
        "/mail",
        data=b"--XyZ\r\nnot a part--XyZ--\r\n",
        content_type="multipart/form-data; boundary=XyZ",
    )
    assert response.status_code == 400
    assert_matches(spec, "Error", response.get_json())
    assert response.get_json()["errors"] == [
        {"field": "body", "message": "Malformed multipart/form-data"}
    ]


EXPECTED_CODES = {
    ("/inbound", "get"): {"200", "400", "401", "403", "429", "500", "503"},
    ("/inbound/{inbound_id}", "get"): {"200", "401", "403", "404", "429", "500", "503"},
    ("/inbound/{inbound_id}/attachments/{position}", "get"): {
        "200",
        "401",
        "403",
        "404",
        "410",
        "429",
        "500",
        "503",
    },
    ("/mail", "post"): {
        "202",
        "400",
        "401",
        "403",
        "405",
        "413",
        "415",
        "422",
        "429",
        "500",
        "503",
    },
    ("/mail", "get"): {"200", "400", "401", "403", "429", "500", "503"},
    ("/mail/batch", "post"): {
        "202",
        "400",
        "401",
        "403",
        "405",
        "413",
        "415",
        "422",
        "429",
        "500",
        "503",
    },
    ("/mail/{mail_id}/cancel", "post"): {"200", "401", "403", "404", "409", "429", "500", "503"},
    ("/mail/{mail_id}/retry", "post"): {"202", "401", "403", "404", "409", "429", "500", "503"},
    ("/webhooks/mailgun", "post"): {"200", "400", "401", "404", "503"},
    ("/webhooks/sendgrid", "post"): {"200", "400", "401", "404", "503"},
    ("/webhooks/ses", "post"): {"200", "400", "401", "403", "404", "502", "503"},
    ("/webhooks/postmark", "post"): {"200", "400", "401", "404", "429", "503"},
    ("/inbound/mailgun", "post"): {"200", "400", "401", "404", "413", "503"},
    ("/inbound/mailgun/mime", "post"): {"200", "400", "401", "404", "413", "503"},
    ("/inbound/sendgrid", "post"): {"200", "400", "401", "404", "413", "429", "503"},
    ("/inbound/postmark", "post"): {"200", "400", "401", "404", "413", "429", "503"},
    ("/suppressions", "get"): {"200", "400", "401", "403", "429", "500", "503"},
    ("/suppressions", "post"): {
        "200",
        "201",
        "400",
        "401",
        "403",
        "413",
        "415",
        "429",
        "500",
        "503",
    },
    ("/suppressions/{address}", "delete"): {"204", "401", "403", "404", "429", "500", "503"},
    ("/mail/{mail_id}", "get"): {"200", "401", "403", "404", "405", "429", "500", "503"},
    ("/mail/{mail_id}/events", "get"): {"200", "400", "401", "403", "404", "429", "500", "503"},
    ("/audit", "get"): {"200", "400", "401", "403", "429", "500", "503"},
    ("/health", "get"): {"200", "500", "503"},
    ("/healthz", "get"): {"200"},
    ("/readyz", "get"): {"200", "503"},
    ("/metrics", "get"): {"200", "401", "429", "500"},
    ("/api/spec", "get"): {"200"},
    ("/api/docs", "get"): {"200"},
    ("/templates", "get"): {"200", "400", "401", "403", "429", "500", "503"},
    ("/templates", "post"): {"201", "400", "401", "403", "409", "413", "415", "429", "500", "503"},
    ("/templates/{name}", "get"): {"200", "401", "403", "404", "429", "500", "503"},
    ("/templates/{name}", "put"): {
        "201",
        "400",
        "401",
        "403",
        "404",
        "413",
        "415",
        "429",
        "500",
        "503",
    },
    ("/templates/{name}", "delete"): {"204", "401", "403", "404", "429", "500", "503"},
    ("/templates/{name}/versions/{version}", "get"): {
        "200",
        "401",
        "403",
        "404",
        "429",
        "500",
        "503",
    },
    ("/templates/{name}/render", "post"): {
        "200",
        "400",
        "401",
        "403",
        "404",
        "413",
        "415",
        "429",
        "500",
        "503",
    },
    ("/webhook-endpoints", "get"): {"200", "400", "401", "403", "429", "500", "503"},
    ("/webhook-endpoints", "post"): {"201", "400", "401", "403", "413", "415", "429", "500", "503"},
    ("/webhook-endpoints/{endpoint_id}", "get"): {"200", "401", "403", "404", "429", "500", "503"},
    ("/webhook-endpoints/{endpoint_id}", "patch"): {
        "200",
        "400",
        "401",
        "403",
        "404",
        "413",
        "415",
        "429",
        "500",
        "503",
    },
    ("/keys", "get"): {"200", "400", "401", "403", "429", "500", "503"},
    ("/keys", "post"): {"201", "400", "401", "403", "413", "415", "429", "500", "503"},
    ("/keys/{key_id}", "delete"): {"204", "401", "403", "404", "429", "500", "503"},
    ("/webhook-endpoints/{endpoint_id}", "delete"): {
        "204",
        "401",
        "403",
        "404",
        "429",
        "500",
        "503",
    },
}


def test_webhook_endpoint_answers_match_the_spec(client, spec):
    created = client.post("/webhook-endpoints", json={"url": "https://hooks.example.com/h"})
    assert created.status_code == 201
    assert_matches(spec, "CreatedWebhookEndpoint", created.get_json())
    endpoint = created.get_json()["id"]
    assert_matches(spec, "WebhookEndpoint", client.get(f"/webhook-endpoints/{endpoint}").get_json())
    changed = client.patch(f"/webhook-endpoints/{endpoint}", json={"events": ["mail.sent"]})
    assert_matches(spec, "WebhookEndpoint", changed.get_json())
    assert_matches(spec, "WebhookEndpointPage", client.get("/webhook-endpoints").get_json())
    refused = client.post("/webhook-endpoints", json={"url": "https://127.0.0.1/h"})
    assert refused.status_code == 400
    assert_matches(spec, "Error", refused.get_json())


def test_every_operation_documents_each_code_it_can_answer(spec):
    operations = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert operations == set(EXPECTED_CODES)
    for (path, method), codes in EXPECTED_CODES.items():
        assert documented_codes(spec, path, method) == codes, (path, method)


def test_error_answers_have_the_error_body_and_their_headers(spec):
    components = spec["components"]
    for name, answer in components["responses"].items():
        schema = answer["content"]["application/json"]["schema"]
        assert {"$ref": "#/components/schemas/Error"} in (schema, *schema.get("allOf", ())), name
    for name in ("TooManyRequests", "ServiceUnavailable"):
        assert "Retry-After" in components["responses"][name]["headers"]
    assert "Allow" in components["responses"]["MethodNotAllowed"]["headers"]
    for name in ("Retry-After", "Allow", "Location"):
        assert components["headers"][name]["required"] is True
    assert not components["headers"]["WWW-Authenticate"].get("required")  # not in protected mode


def test_401_with_keys_sends_www_authenticate(app, client, spec):
    app.config["API_KEYS"] = ("secret-key",)
    response = client.post("/mail", json=MAIL)
    assert response.status_code == 401 and "WWW-Authenticate" in response.headers
    assert_matches(spec, "Error", response.get_json())
    assert client.post("/mail", json=MAIL, headers={"X-API-Key": "secret-key"}).status_code == 202
    ok = client.post("/mail", json=MAIL, headers={"Authorization": "Bearer secret-key"})
    assert ok.status_code == 202


def test_health_matches_the_spec(client, spec, run_worker):
    run_worker()  # creates the providers' rows
    body = client.get("/health").get_json()
    assert body["providers"]
    assert_matches(spec, "Health", body)
    for provider in body["providers"]:
        assert_matches(spec, "ProviderHealth", provider)


def without(fields, *names):
    """``fields`` less the named ones."""
    return {key: value for key, value in fields.items() if key not in names}


# One more than the default MAX_RECIPIENTS (the tests' settings keep it).
RECIPIENTS = [f"r{number}@example.com" for number in range(DEFAULTS["MAX_RECIPIENTS"] + 1)]


@pytest.mark.parametrize(
    ("fields", "accepted"),
    [
        (MAIL, True),
        ({**MAIL, "text": None, "html": "<p>Hi</p>"}, True),
        ({**MAIL, "text": "", "html": "<p>Hi</p>"}, True),
        ({**MAIL, "html": ""}, True),
        ({**MAIL, "to": ["a@example.com"], "cc": "b@example.com, c@example.com"}, True),
        ({**MAIL, "cc": None, "bcc": "", "reply_to": []}, True),
        (
            {
                **MAIL,
                "from": ["Shop <shop@example.com>"],
                "reply_to": ['"Help, desk" <h@example.com>'],
            },
            True,
        ),
        ({**MAIL, "to": "Zoë Noël <zoe@example.com>, <bob@Example.COM>"}, True),
        ({**MAIL, "to": ", ".join(RECIPIENTS[:-1])}, True),
        ({**MAIL, "to": RECIPIENTS[:-1]}, True),
        ({**MAIL, "subject": "Tabs\tare fine", "text": "Lines\r\nare fine in a body"}, True),
        (without(MAIL, "text"), False),
        ({**MAIL, "text": ""}, False),
        ({**MAIL, "text": None}, False),
        (without(MAIL, "subject"), False),
        ({**MAIL, "subject": ""}, False),
        ({**MAIL, "from": ""}, False),
        ({**MAIL, "from": []}, False),
        ({**MAIL, "from": None}, False),
        ({**MAIL, "to": ""}, False),
        ({**MAIL, "to": []}, False),
        ({**MAIL, "from": "nobody"}, False),
        ({**MAIL, "from": "a@example.com, b@example.com"}, False),
        ({**MAIL, "from": ["a@example.com", "b@example.com"]}, False),
        ({**MAIL, "reply_to": "a@example.com, b@example.com"}, False),
        ({**MAIL, "to": ", ".join(RECIPIENTS)}, False),
        ({**MAIL, "to": RECIPIENTS}, False),
        ({**MAIL, "to": [""]}, False),
        ({**MAIL, "to": "a@exa mple.com"}, False),
        ({**MAIL, "subject": "Hi\r\nBcc: victim@example.com"}, False),
        ({**MAIL, "subject": "Hi\u2028there"}, False),
        ({**MAIL, "subject": "Hi\x85there"}, False),
        ({**MAIL, "subject": "x" * 999}, False),
        ({**MAIL, "to": "Eve\r\n <eve@example.com>"}, False),
        ({**MAIL, "html": "<p>\x00</p>"}, False),
        ({**MAIL, "attachment_list": []}, False),
        ({**MAIL, "to": 42}, False),
        ({**MAIL, "cc": {"address": "a@example.com"}}, False),
    ],
)
def test_request_schema_agrees_with_the_api(client, spec, fields, accepted):
    assert validator(spec, "MailRequest").is_valid(fields) is accepted
    response = client.post("/mail", json=fields)
    assert response.status_code == (202 if accepted else 400), response.get_json()


@pytest.mark.parametrize(
    ("fields", "accepted"),
    [
        ({**MAIL, "cc": "", "reply_to": "", "html": ""}, True),
        ({**MAIL, "to": ["a@example.com", "B <b@example.com>"]}, True),
        ({**MAIL, "text": ""}, False),
        ({**MAIL, "from": ""}, False),
    ],
)
def test_form_schema_agrees_with_the_api(client, spec, fields, accepted):
    assert validator(spec, "MailForm").is_valid(fields) is accepted
    assert client.post("/mail", data=fields).status_code == (202 if accepted else 400)


def schema_keys(schema):
    """Every key used anywhere in ``schema``, however deep."""
    if isinstance(schema, dict):
        return set(schema) | {key for value in schema.values() for key in schema_keys(value)}
    if isinstance(schema, list):
        return {key for value in schema for key in schema_keys(value)}
    return set()


def test_a_form_has_no_nulls(spec):
    content = spec["paths"]["/mail"]["post"]["requestBody"]["content"]
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/MailRequest"}
    for kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        assert content[kind]["schema"] == {"$ref": "#/components/schemas/MailForm"}
    assert "nullable" in schema_keys(spec["components"]["schemas"]["MailRequest"])
    assert "nullable" not in schema_keys(spec["components"]["schemas"]["MailForm"])


def ecma_pattern(pattern):
    """``pattern`` as Python reads an ECMA-262 one: ``$`` ends the string, not a last line."""
    assert pattern.startswith("^") and pattern.endswith("$")
    return re.compile(pattern[:-1] + r"\Z")


def test_header_pattern_is_the_validations(spec):
    subject = spec["components"]["schemas"]["MailRequest"]["properties"]["subject"]
    pattern = ecma_pattern(subject["pattern"])
    for code in [*range(0xD800), *range(0xE000, 0x10000)]:
        for text in (chr(code), f"Hi{chr(code)}", f"{chr(code)}there"):
            allowed = pattern.search(text) is not None
            assert allowed is (FORBIDDEN_IN_HEADERS.search(text) is None), hex(code)


def test_address_limits_follow_the_config(app, client):
    app.config["MAX_RECIPIENTS"] = 2
    spec = client.get("/api/spec").get_json()
    check = validator(spec, "MailRequest")
    for to, accepted in (
        (RECIPIENTS[:2], True),
        (RECIPIENTS[:3], False),
        (", ".join(RECIPIENTS[:2]), True),
        (", ".join(RECIPIENTS[:3]), False),
    ):
        assert check.is_valid({**MAIL, "to": to}) is accepted
        assert client.post("/mail", json={**MAIL, "to": to}).status_code == (
            202 if accepted else 400
        )


# The docs page -------------------------------------------------------------------------------


class LoadedUrls(HTMLParser):
    """The URLs an HTML page makes the browser load: every ``src`` and ``href``."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        """Keep the tag's ``src`` and ``href``."""
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def docs_page(client, path="/api/docs", **kwargs):
    """The docs page's HTML, checked to be a 200 HTML answer."""
    response = client.get(path, **kwargs)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def loaded_urls(page):
    """The URLs of the assets ``page`` loads."""
    parser = LoadedUrls()
    parser.feed(page)
    return parser.urls


def swagger_ui_config(page):
    """The settings the page hands Swagger UI, as a dict."""
    start = page.index("var user_config = ") + len("var user_config = ")
    return json.JSONDecoder().raw_decode(page, start)[0]


@pytest.mark.parametrize("path", ["/api/docs", "/api/docs/"])
def test_docs_page_is_swagger_ui_for_the_spec(client, path):
    page = docs_page(client, path)
    config = swagger_ui_config(page)
    assert config["url"] == "/api/spec"
    assert config["validatorUrl"] is None  # no badge calling validator.swagger.io
    assert "SwaggerUIBundle(config)" in page


def test_docs_page_loads_only_local_assets(client):
    page = docs_page(client)
    urls = loaded_urls(page)
    assert {url.rsplit(".", 1)[-1] for url in urls} >= {"js", "css"}
    for url in urls:
        assert url.startswith("/api/docs/"), url  # not another host, not //host/...
        with client.get(url) as asset:
            assert asset.status_code == 200, url
            if url.endswith(".css"):  # no web fonts or images from elsewhere
                css = asset.get_data(as_text=True)
                assert "@import" not in css and not re.search(r"url\((?![\"']?data:)", css)
    assert re.findall(r"[a-z][a-z0-9+.-]*://\S*", page, flags=re.IGNORECASE) == []


def test_docs_and_spec_need_no_key(app, client):
    app.config["API_KEYS"] = "secret-key"
    remote = {"REMOTE_ADDR": "192.0.2.7"}
    assert client.post("/mail", json=MAIL, environ_base=remote).status_code == 401
    assert client.get("/api/spec", environ_base=remote).status_code == 200
    page = docs_page(client, environ_base=remote)
    with client.get(loaded_urls(page)[0], environ_base=remote) as asset:
        assert asset.status_code == 200


def test_docs_asset_paths_stay_in_the_bundle(client):
    assert client.get("/api/docs/../../app.py").status_code == 404
    assert client.get("/api/docs/%2e%2e/openapi.py").status_code == 404
