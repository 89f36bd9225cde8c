// The admin dashboard refreshes itself: every data-poll-ms it fetches dashboard.json and puts
// each value where the page marks it (data-bind="path.in.json", data-format), rebuilds the
// lists (data-list, data-columns; the workers gone with their Release forms), shows the banner
// and the page's title for what is wrong now, shows each breaker's one button that applies,
// and reloads the chart image. Text only (textContent): nothing from the JSON becomes markup.
(function () {
    'use strict';
    var root = document.getElementById('dashboard');
    if (!root) { return; }
    var tones = JSON.parse(root.getAttribute('data-tones') || '{}');

    function lookup(data, path) {
        return path.split('.').reduce(function (value, key) {
            return value === null || value === undefined ? undefined : value[key];
        }, data);
    }

    function pad(number) { return (number < 10 ? '0' : '') + number; }

    function utc(value) {
        if (!value) { return ''; }
        var d = new Date(value);
        return d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) +
            ' ' + pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' +
            pad(d.getUTCSeconds()) + ' UTC';
    }

    function age(seconds) {
        if (seconds === null || seconds === undefined) { return ''; }
        var s = Math.floor(seconds);
        if (s < 60) { return s + 's'; }
        if (s < 3600) { return Math.floor(s / 60) + 'm ' + pad(s % 60) + 's'; }
        if (s < 86400) { return Math.floor(s / 3600) + 'h ' + pad(Math.floor(s % 3600 / 60)) + 'm'; }
        return Math.floor(s / 86400) + 'd ' + pad(Math.floor(s % 86400 / 3600)) + 'h';
    }

    function badge(value) {
        var span = document.createElement('span');
        span.className = 'badge st st-' + value + ' tone-' + (tones[value] || 'muted');
        span.setAttribute('data-status', value);
        span.textContent = value;
        return span;
    }

    var FORMATS = {
        utc: utc,
        age: age,
        yesno: function (value) { return value ? 'yes' : 'no'; },
        hand: function (value) {
            if (!value) { return ''; }
            return 'by ' + value.by + ' at ' + utc(value.at) + (value.reason ? ': ' + value.reason : '');
        }
    };

    function show(value, format) {
        if (format && FORMATS[format]) { return FORMATS[format](value); }
        return value === null || value === undefined ? '' : String(value);
    }

    function bindValues(data) {
        root.querySelectorAll('[data-bind]').forEach(function (element) {
            var value = lookup(data, element.getAttribute('data-bind'));
            if (element.getAttribute('data-format') === 'badge') {
                element.textContent = '';
                if (value) { element.appendChild(badge(value)); }
                return;
            }
            element.textContent = show(value, element.getAttribute('data-format'));
        });
    }

    function cell(row, text, link, label) {
        var td = document.createElement('td');
        if (label) { td.setAttribute('data-label', label); }
        if (link) {
            var a = document.createElement('a');
            a.href = link;
            a.textContent = text;
            td.appendChild(a);
        } else {
            td.textContent = text;
        }
        row.appendChild(td);
    }

    function detailsUrl(id) { return root.getAttribute('data-details') + '?id=' + encodeURIComponent(id); }

    function labels(body) {
        var head = body.parentNode.querySelectorAll('thead th');
        return Array.prototype.map.call(head, function (th) { return th.textContent.trim(); });
    }

    function fillList(body, items) {
        var columns = body.getAttribute('data-columns').split(' ');
        var names = labels(body);
        body.textContent = '';
        (items || []).forEach(function (item) {
            var row = document.createElement('tr');
            if (item.id) { row.setAttribute('data-mail', item.id); }
            if (item.name && item.host) { row.setAttribute('data-worker', item.name); }
            if (item.provider) { row.setAttribute('data-provider', item.provider); }
            columns.forEach(function (column, index) {
                var parts = column.split(':');
                var value = item[parts[0]];
                if (parts[1] === 'mail') {
                    cell(row, show(value), detailsUrl(item.id), names[index]);
                } else {
                    cell(row, show(value, parts[1]), null, names[index]);
                }
            });
            body.appendChild(row);
        });
    }

    function releaseForm(worker) {
        var form = document.createElement('form');
        form.method = 'POST';
        form.className = 'release-form';
        form.action = root.getAttribute('data-release').replace('NAME', encodeURIComponent(worker.name));
        form.setAttribute('data-confirm', 'Hand the ' + worker.held + ' mail ' + worker.name +
            ' held back to the queue? The provider may already have some, so a recipient may get one twice.');
        var token = document.createElement('input');
        token.type = 'hidden';
        token.name = 'csrf_token';
        token.value = root.getAttribute('data-csrf');
        var button = document.createElement('button');
        button.type = 'submit';
        button.className = 'btn btn-sm btn-danger';
        button.setAttribute('data-release', worker.name);
        button.textContent = 'Release ' + worker.held + ' mail';
        form.appendChild(token);
        form.appendChild(button);
        return form;
    }

    function fillGone(body, workers) {
        var names = labels(body);
        body.textContent = '';
        workers.forEach(function (worker) {
            var row = document.createElement('tr');
            row.setAttribute('data-gone-worker', worker.name);
            cell(row, worker.name, null, names[0]);
            cell(row, worker.last_seen ? utc(worker.last_seen) : 'none', null, names[1]);
            cell(row, String(worker.held), null, names[2]);
            cell(row, utc(worker.lease_until), null, names[3]);
            var mail = document.createElement('td');
            mail.setAttribute('data-label', names[4]);
            worker.mail.forEach(function (item, index) {
                if (index) { mail.appendChild(document.createTextNode(', ')); }
                var a = document.createElement('a');
                a.href = detailsUrl(item.id);
                a.setAttribute('data-mail', item.id);
                a.textContent = item.subject;
                mail.appendChild(a);
            });
            if (worker.held > worker.mail.length) {
                mail.appendChild(document.createTextNode(' and ' + (worker.held - worker.mail.length) + ' more'));
            }
            row.appendChild(mail);
            var action = document.createElement('td');
            action.appendChild(releaseForm(worker));
            row.appendChild(action);
            body.appendChild(row);
        });
        document.getElementById('dash-gone-panel').hidden = workers.length === 0;
    }

    function showAlerts(data) {
        var list = document.getElementById('dash-alerts');
        list.textContent = '';
        data.alerts.forEach(function (text) {
            var item = document.createElement('li');
            item.textContent = text;
            list.appendChild(item);
        });
        document.getElementById('dash-banner').hidden = data.alerts.length === 0;
        document.getElementById('meltdown').hidden = data.providers.status !== 'meltdown';
        var title = root.getAttribute('data-title');
        if (data.alerts.length) {
            title = '\u26a0 ' + data.alerts[0] +
                (data.alerts.length > 1 ? ' (+' + (data.alerts.length - 1) + ')' : '') + ' \u00b7 ' + title;
        }
        document.title = title;
    }

    function showBreakerButtons(providers) {
        providers.forEach(function (provider) {
            var closed = provider.state === 'closed' && !provider.opened_by_hand;
            root.querySelectorAll('form[data-breaker-form][data-provider="' + provider.name + '"]')
                .forEach(function (form) {
                    var opens = form.getAttribute('data-breaker-form') === 'open';
                    form.hidden = opens ? !closed : closed;
                });
        });
    }

    function render(data) {
        bindValues(data);
        root.querySelectorAll('[data-list][data-columns]').forEach(function (body) {
            fillList(body, lookup(data, body.getAttribute('data-list')));
        });
        root.querySelectorAll('[data-list="gone_workers"]').forEach(function (body) {
            fillGone(body, data.gone_workers);
        });
        showAlerts(data);
        ['sent', 'failed', 'bounced'].forEach(function (name) {
            var total = data.series[name].reduce(function (a, b) { return a + b; }, 0);
            root.querySelectorAll('[data-total="' + name + '"]').forEach(function (element) {
                element.textContent = String(total);
            });
        });
        showBreakerButtons(data.providers.providers);
        document.getElementById('dash-chart').src = root.getAttribute('data-chart') + '?t=' + Date.now();
        root.setAttribute('data-polls', String(Number(root.getAttribute('data-polls') || 0) + 1));
    }

    function poll() {
        fetch(root.getAttribute('data-json'), {credentials: 'same-origin', cache: 'no-store'})
            .then(function (response) {
                if (!response.ok) { throw new Error('HTTP ' + response.status); }
                return response.json();
            })
            .then(function (data) {
                document.getElementById('dash-poll-error').hidden = true;
                render(data);
            })
            .catch(function () { document.getElementById('dash-poll-error').hidden = false; });
    }

    poll();
    window.setInterval(poll, Number(root.getAttribute('data-poll-ms')) || 5000);
}());
