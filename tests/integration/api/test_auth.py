"""Who may use the API and the admin: API keys, HTTP Basic, and loopback-only protected mode."""

import base64
import uuid

import pytest

from app import create_app
from models import db

KEYS = "key-one, key-two"
REMOTE = {"REMOTE_ADDR": "203.0.113.9"}
PROXIED = [
    {"X-Forwarded-For": "203.0.113.9"},
    {"X-Real-IP": "203.0.113.9"},
    {"Forwarded": "for=203.0.113.9"},
]


@pytest.fixture
def make_client(settings, app):
    """Clients of apps built with extra settings, in the test's transaction (``app``)."""
    apps = []

    def make(**overrides):
        application = create_app({**settings, **overrides})
        apps.append(application)
        return application.test_client()

    yield make
    for application in apps:
        with application.app_context():
            db.engine.dispose()


def basic(username, password):
    """An HTTP Basic Authorization header."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def assert_401(response):
    """A JSON 401 naming the Authorization header."""
    assert response.status_code == 401, response.data
    body = response.get_json()
    assert body["success"] is False and body["message"]
    assert body["errors"][0]["field"] == "Authorization"
    return body


# --- API keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"X-API-Key": "wrong"},
        {"Authorization": "Basic a2V5LW9uZTo="},
        {"Authorization": "Bearer "},
        {"Authorization": "key-one"},
        {"X-API-Key": "key-one-and-more"},
        {"X-API-Key": "key"},
    ],
)
def test_api_rejects_missing_or_wrong_keys(make_client, app, headers, mail):
    client = make_client(API_KEYS=KEYS)
    assert_401(client.post("/mail", json=mail, headers=headers))
    assert_401(client.get(f"/mail/{uuid.uuid4()}", headers=headers))


def test_missing_key_asks_for_bearer(make_client, app, mail):
    response = make_client(API_KEYS=KEYS).post("/mail", json=mail)
    assert_401(response)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer key-one"},
        {"Authorization": "bearer key-two"},
        {"X-API-Key": "key-two"},
        {"Authorization": "Bearer  key-one "},
    ],
)
def test_api_accepts_any_configured_key(make_client, app, headers, mail):
    client = make_client(API_KEYS=KEYS)
    response = client.post("/mail", json=mail, headers=headers)
    assert response.status_code == 202, response.get_json()
    assert client.get(response.headers["Location"], headers=headers).status_code == 200


def test_a_key_lets_remote_clients_in(make_client, app, mail):
    client = make_client(API_KEYS=KEYS)
    headers = {"X-API-Key": "key-one", "X-Forwarded-For": "198.51.100.7"}
    response = client.post("/mail", json=mail, headers=headers, environ_base=REMOTE)
    assert response.status_code == 202


def test_auth_comes_before_validation_and_lookup(make_client, app):
    client = make_client(API_KEYS=KEYS)
    assert_401(client.post("/mail", data="x", content_type="text/plain"))
    assert_401(client.post("/mail", json={"to": "nope"}))
    assert_401(client.get("/mail/not-a-uuid"))


# --- API protected mode (no keys) -----------------------------------------------------------


def test_protected_mode_serves_loopback(client, mail):
    assert client.post("/mail", json=mail).status_code == 202
    ipv6 = client.post("/mail", json=mail, environ_base={"REMOTE_ADDR": "::1"})
    assert ipv6.status_code == 202


def test_protected_mode_serves_ipv4_mapped_loopback(client, mail):
    # What a dual-stack server ([::]) sees for a local IPv4 client.
    mapped = {"REMOTE_ADDR": "::ffff:127.0.0.1"}
    assert client.post("/mail", json=mail, environ_base=mapped).status_code == 202
    assert_401(client.post("/mail", json=mail, environ_base={"REMOTE_ADDR": "::ffff:203.0.113.9"}))


def test_protected_mode_refuses_remote_clients(client, mail):
    assert_401(client.post("/mail", json=mail, environ_base=REMOTE))
    assert_401(client.get(f"/mail/{uuid.uuid4()}", environ_base=REMOTE))


@pytest.mark.parametrize("headers", PROXIED)
def test_protected_mode_refuses_proxied_requests(client, headers, mail):
    assert_401(client.post("/mail", json=mail, headers=headers))


def test_protected_mode_ignores_presented_keys(client, mail):
    # With no keys configured there is nothing a remote client could present.
    response = client.post("/mail", json=mail, headers={"X-API-Key": ""}, environ_base=REMOTE)
    assert_401(response)


# --- Admin ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/admin/", "/admin/email/", "/admin/email/new/"])
def test_admin_requires_basic_auth(make_client, app, path):
    client = make_client(ADMIN_USERNAME="ops", ADMIN_PASSWORD="s3cret")
    for headers in (
        {},
        basic("ops", "wrong"),
        basic("admin", "s3cret"),
        basic("ops", ""),
        {"Authorization": "Bearer s3cret"},
    ):
        response = client.get(path, headers=headers)
        assert response.status_code == 401, (path, headers)
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert client.get(path, headers=basic("ops", "s3cret")).status_code == 200


def test_admin_with_password_serves_remote_operators(make_client, app):
    client = make_client(ADMIN_PASSWORD="s3cret")
    headers = {**basic("admin", "s3cret"), "X-Forwarded-For": "198.51.100.7"}
    assert client.get("/admin/", headers=headers, environ_base=REMOTE).status_code == 200


def test_admin_without_password_serves_loopback_only(client):
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/email/").status_code == 200
    assert client.get("/admin/", environ_base=REMOTE).status_code == 401
    for headers in PROXIED:
        assert client.get("/admin/email/", headers=headers).status_code == 401
    # Credentials mean nothing while no password is configured.
    response = client.get("/admin/", headers=basic("admin", ""), environ_base=REMOTE)
    assert response.status_code == 401
