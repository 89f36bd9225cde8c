"""What a mail header may hold: the one rule for subjects, addresses, custom headers and tags,
and the bidirectional controls that subjects, display names and file names may not hold."""

import re

# What a header field may not hold: every character that str.splitlines() breaks a line at
# (CR, LF, VT, FF, FS, GS, RS, NEL, LS, PS), any other C0 control but TAB, DEL, and C1 controls.
# Some mail libraries fold or split at any of them, so each can smuggle in a header.
FORBIDDEN_IN_HEADERS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
# Bidirectional embeddings, overrides and isolates: they make the text around them read in
# another order, so that "moc.elpmaxe@ecnalab" reads as another sender's name, or a subject
# as another subject. The marks (LRM, RLM, ALM) stay allowed there: right-to-left text uses
# them, and they reorder no run of letters.
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
# In a file name the marks go too: a name that starts with an RLM is shown right to left, and
# marks around its dot then move the extension to where a reader does not look for it.
BIDI_IN_FILE_NAMES = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def header_problem(value):
    """Why ``value`` may not stand in a mail header (a line break, a control), or None."""
    found = FORBIDDEN_IN_HEADERS.search(value)
    if found is None:
        return None
    return f"Must not contain line breaks or control characters (found U+{ord(found.group()):04X})"


def bidi_problem(value, controls=BIDI_CONTROLS):
    """Why ``value`` may not be shown as it is (a bidirectional control), or None."""
    found = controls.search(value)
    if found is None:
        return None
    return f"Must not contain bidirectional controls (found U+{ord(found.group()):04X})"
