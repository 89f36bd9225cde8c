"""What a mail header may hold: the one rule for subjects, addresses, custom headers and tags."""

import re

# What a header field may not hold: every character that str.splitlines() breaks a line at
# (CR, LF, VT, FF, FS, GS, RS, NEL, LS, PS), any other C0 control but TAB, DEL, and C1 controls.
# Some mail libraries fold or split at any of them, so each can smuggle in a header.
FORBIDDEN_IN_HEADERS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def header_problem(value):
    """Why ``value`` may not stand in a mail header (a line break, a control), or None."""
    found = FORBIDDEN_IN_HEADERS.search(value)
    if found is None:
        return None
    return f"Must not contain line breaks or control characters (found U+{ord(found.group()):04X})"
