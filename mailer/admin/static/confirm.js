// Admin forms that change something ask first: a form with data-confirm="question" is sent only
// if the operator says OK. Bound here, not inline, because the admin's Content-Security-Policy
// allows no inline handlers.
(function () {
    'use strict';
    document.addEventListener('submit', function (event) {
        var question = event.target.getAttribute('data-confirm');
        if (question && !window.confirm(question)) {
            event.preventDefault();
        }
    });
}());
