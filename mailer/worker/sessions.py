"""HTTP sessions of the worker's threads: one ``requests.Session`` per thread and service, so
connections are reused (keep-alive) by the provider calls and the client webhooks alike."""

import os
import threading

import requests


class Sessions:
    """One ``requests.Session`` per send thread and provider, so connections are reused.

    A default session re-reads the proxy and CA-bundle environment variables on every request,
    which costs more CPU than the rest of a send; here they are read once per session instead.
    TLS verification stays on: ``verify`` is the CA bundle from the environment, or certifi's.
    """

    def __init__(self):
        self._local = threading.local()

    def get(self, provider):
        """This thread's session for ``provider``."""
        sessions = self._local.__dict__.setdefault("sessions", {})
        if provider.name not in sessions:
            sessions[provider.name] = new_session(provider.base_url)
        return sessions[provider.name]


def new_session(base_url):
    """A session that honours HTTPS_PROXY/NO_PROXY and REQUESTS_CA_BUNDLE, read once."""
    session = requests.Session()
    session.trust_env = False
    session.proxies = requests.utils.get_environ_proxies(base_url)
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    return session
