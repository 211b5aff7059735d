"""Every ```python block of the docs runs, each as a module of its own, with the project's settings
and the test database. A block not meant to run is preceded by `% snippet: skip - <why>`, and is
reported as skipped with that reason."""

import importlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
SKIP = re.compile(r"^% snippet: skip - (?P<reason>\S.*)$")
FENCE = re.compile(r"^```python\s*$")


@dataclass(frozen=True)
class Snippet:
    page: str
    line: int
    code: str
    skip: str | None  # the reason, when the page marks it not to run

    @property
    def name(self):
        return f"{self.page}:{self.line}"


def snippets(folder=DOCS):
    found = []
    for page in sorted(folder.rglob("*.md")):
        lines = page.read_text().splitlines()
        reason, number = None, 0
        while number < len(lines):
            line = lines[number]
            marker = SKIP.match(line)
            if marker:
                reason = marker["reason"]
            elif line.startswith("```"):  # a block: python is a snippet, any other is passed over
                end = next(n for n in range(number + 1, len(lines)) if lines[n].startswith("```"))
                if FENCE.match(line):
                    code = "\n".join(lines[number + 1 : end]) + "\n"
                    found.append(Snippet(str(page.relative_to(folder)), number + 1, code, reason))
                elif reason is not None:
                    raise AssertionError(f"{page}:{number + 1}: a skip marker is for a python block")
                reason, number = None, end
            elif line.startswith("% snippet"):
                raise AssertionError(f"{page}:{number + 1}: write `% snippet: skip - <why>`, got {line!r}")
            elif line.strip() and reason is not None:
                raise AssertionError(f"{page}:{number + 1}: a skip marker must come right before its block")
            number += 1
    return found


SNIPPETS = snippets()


def test_the_docs_have_snippets_and_most_of_them_run():
    ran = [s.name for s in SNIPPETS if s.skip is None]
    skipped = [f"{s.name} ({s.skip})" for s in SNIPPETS if s.skip]
    print(f"{len(ran)} snippets run, {len(skipped)} skipped:", *skipped, sep="\n  ")
    assert len(ran) >= 4 and len(ran) > len(skipped), (ran, skipped)


def test_a_skip_marker_must_say_why(tmp_path):
    (tmp_path / "page.md").write_text("% snippet: skip\n\n```python\n1 / 0\n```\n")
    with pytest.raises(AssertionError, match="snippet: skip - <why>"):
        snippets(tmp_path)


@pytest.mark.django_db
@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda s: s.name)
def test_snippet_runs(snippet, tmp_path, monkeypatch, settings):
    if snippet.skip:
        pytest.skip(f"{snippet.name}: {snippet.skip}")
    # A module of its own, so that its @task functions are module-level and importable by path.
    module = f"docs_snippet_{Path(snippet.page).stem.replace('-', '_')}_{snippet.line}"
    (tmp_path / f"{module}.py").write_text(snippet.code)
    monkeypatch.syspath_prepend(str(tmp_path))
    settings.RELIEVE_SOCKET = str(tmp_path / "nobody.sock")  # no master: enqueued tasks stay READY
    try:
        importlib.import_module(module)
    finally:
        sys.modules.pop(module, None)
