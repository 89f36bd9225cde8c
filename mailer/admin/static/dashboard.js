// The admin dashboard refreshes itself: every data-poll-ms it fetches dashboard.json and puts
// each value where the page marks it (data-bind="path.in.json", data-format), rebuilds the
// lists (data-list, data-columns), shows how each count changed since the previous refresh,
// and reloads the chart image. Text only (textContent): nothing from the JSON becomes markup.
(function () {
    'use strict';
    var root = document.getElementById('dashboard');
    if (!root) { return; }
    var previousCounts = null;

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
            element.textContent = show(lookup(data, element.getAttribute('data-bind')),
                                       element.getAttribute('data-format'));
        });
    }

    function cell(row, text, link) {
        var td = document.createElement('td');
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

    function fillList(body, items) {
        var columns = body.getAttribute('data-columns').split(' ');
        body.textContent = '';
        (items || []).forEach(function (item) {
            var row = document.createElement('tr');
            if (item.id) { row.setAttribute('data-mail', item.id); }
            if (item.name && item.host) { row.setAttribute('data-worker', item.name); }
            columns.forEach(function (column) {
                var parts = column.split(':');
                var value = item[parts[0]];
                if (parts[1] === 'mail') {
                    cell(row, show(value), detailsUrl(item.id));
                } else {
                    cell(row, show(value, parts[1]));
                }
            });
            body.appendChild(row);
        });
    }

    function fillFailures(body, providers) {
        body.textContent = '';
        providers.forEach(function (provider) {
            provider.recent_failures.forEach(function (failure) {
                var row = document.createElement('tr');
                row.setAttribute('data-provider', provider.name);
                [provider.name, utc(failure.at), failure.outcome, show(failure.status_code),
                 show(failure.error)].forEach(function (text) { cell(row, text); });
                body.appendChild(row);
            });
        });
    }

    function showDeltas(counts) {
        root.querySelectorAll('[data-delta]').forEach(function (element) {
            var status = element.getAttribute('data-delta');
            var change = previousCounts === null ? 0 : (counts[status] || 0) - (previousCounts[status] || 0);
            element.textContent = change > 0 ? '+' + change : change < 0 ? '\u2212' + (-change) : '';
            element.setAttribute('data-change', String(change));
        });
        previousCounts = counts;
    }

    function showBreakerButtons(providers) {
        providers.forEach(function (provider) {
            root.querySelectorAll('form[data-hide-when-held][data-provider="' + provider.name + '"]')
                .forEach(function (form) { form.hidden = !!provider.opened_by_hand; });
        });
    }

    function render(data) {
        bindValues(data);
        showDeltas(data.counts);
        root.querySelectorAll('[data-list][data-columns]').forEach(function (body) {
            fillList(body, lookup(data, body.getAttribute('data-list')));
        });
        root.querySelectorAll('[data-list="failures"]').forEach(function (body) {
            fillFailures(body, data.providers.providers);
        });
        ['sent', 'failed', 'bounced'].forEach(function (name) {
            var total = data.series[name].reduce(function (a, b) { return a + b; }, 0);
            root.querySelectorAll('[data-total="' + name + '"]').forEach(function (element) {
                element.textContent = String(total);
            });
        });
        document.getElementById('meltdown').hidden = data.providers.status !== 'meltdown';
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
