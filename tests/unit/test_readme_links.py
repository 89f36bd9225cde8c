"""The README's links into the repository lead somewhere: the docs site's strict build checks the
links between the pages of docs/, and this checks the front door's."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def local_targets(text):
    """The link targets of Markdown ``text`` that are paths in the repository (no URL, no
    anchor-only link), without their ``#anchor``."""
    targets = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        targets.append(target.partition("#")[0])
    return targets


def test_local_targets_skips_urls_and_anchors():
    text = "[a](docs/api.md#errors) [b](https://example.com) [c](#quick-start) ![d](docs/x.png)"
    assert local_targets(text) == ["docs/api.md", "docs/x.png"]


def test_every_local_link_of_the_readme_exists():
    targets = local_targets((ROOT / "README.md").read_text())
    assert targets, "the README links into docs/"
    assert [target for target in targets if not (ROOT / target).exists()] == []
