"""bare_address: a plain address skips parseaddr and comes out exactly as parseaddr's would."""

import random
from email.utils import parseaddr

from mailer.validation.addresses import PLAIN, bare_address


def by_parseaddr(address):
    """What bare_address gives for every address: parseaddr's, its domain lower-cased."""
    local, _, domain = parseaddr(address)[1].rpartition("@")
    return f"{local}@{domain.lower()}"


def test_plain_addresses_come_out_as_parseaddr_gives_them():
    alphabet = "aZ09._+=-@ \"<>(),;:[]\\\t!#$%&'*/?^`{|}~é"
    chance = random.Random(13)
    plain = 0
    for _ in range(20000):
        if chance.random() < 0.5:
            address = "".join(chance.choice(alphabet) for _ in range(chance.randint(1, 14)))
        else:
            local = "".join(chance.choice("aZ09._+=-") for _ in range(chance.randint(1, 6)))
            domain = "".join(chance.choice("aZ09.-") for _ in range(chance.randint(1, 6)))
            address = f"{local}@{domain}"
        plain += PLAIN.fullmatch(address) is not None
        assert bare_address(address) == by_parseaddr(address), address
    assert plain > 2000  # the fast path was taken often


def test_names_and_angle_brackets_still_go_through_parseaddr():
    assert bare_address("Ann Lee <Ann.Lee+x@Example.COM>") == "Ann.Lee+x@example.com"
    assert bare_address("Bob@Example.COM") == "Bob@example.com"
    assert bare_address(" bob@example.com ") == "bob@example.com"
