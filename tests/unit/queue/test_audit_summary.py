"""An audit row's summary never holds a secret, however deep a caller put one."""

from mailer.queue.audit import without_secrets


def test_secrets_are_dropped_at_any_depth():
    summary = {
        "name": "checkout",
        "Key": "mk_live_abc",
        "scopes": ["mail:send"],
        "endpoint": {"url": "https://example.com/hook", "secret": "whsec_x"},
        "changes": [{"password": "p", "token": "t", "key_hash": "h", "kept": 1}],
    }
    assert without_secrets(summary) == {
        "name": "checkout",
        "scopes": ["mail:send"],
        "endpoint": {"url": "https://example.com/hook"},
        "changes": [{"kept": 1}],
    }
