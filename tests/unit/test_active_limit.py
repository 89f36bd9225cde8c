"""``green.ActiveLimit``: a gevent worker's requests run the app a few at a time."""

import gevent

from mailer.green import ActiveLimit


def test_no_more_than_the_limit_run_the_app_at_once():
    running, most = [0], [0]

    def app(environ, start_response):
        running[0] += 1
        most[0] = max(most[0], running[0])
        gevent.sleep(0.01)  # waits as a request waits on PostgreSQL: others may run
        running[0] -= 1
        start_response("200 OK", [])
        return [b"ok"]

    limited = ActiveLimit(app, 3)
    answers = gevent.joinall([gevent.spawn(limited, {}, lambda *a: None) for _ in range(10)])
    assert [greenlet.value for greenlet in answers] == [[b"ok"]] * 10
    assert most[0] == 3
