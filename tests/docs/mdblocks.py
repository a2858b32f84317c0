"""The fenced blocks of a Markdown guide, and the markers that make them testable.

A fenced block may be preceded (directly, blank lines allowed) by one HTML comment:

* `<!-- test: <name> -->` on a ```bash block: the test suite runs it with bash;
* `<!-- example: <ce_type> -->` on a ```json block: it IS `handoff_events.examples`'
  example of that type (compared after decoding, so omitted nulls/defaults are fine);
* `<!-- event: <ce_type> -->` on a ```json block: a hand-written event that must decode
  as that type and validate against the AsyncAPI document's schema;
* `<!-- json: <what> -->` on a ```json block: other JSON (HTTP answers, problem documents).

`python -m tests.docs.mdblocks docs/integrating-marketplaces.md` rewrites every
`example:` block from the current examples (run it after changing examples.py).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from handoff_events.examples import EXAMPLES

_BLOCK = re.compile(
    r"(?:<!--\s*(?P<kind>test|example|event|json):\s*(?P<arg>[^\s>]+)[^>]*-->\s*\n(?:\s*\n)*)?"
    r"^```(?P<info>[^\n]*)\n(?P<body>.*?)^```[ \t]*$",
    re.M | re.S,
)


@dataclass(frozen=True)
class Block:
    info: str
    body: str
    kind: str | None
    arg: str | None
    start: int
    end: int
    line: int


def blocks(text: str) -> list[Block]:
    out = []
    for m in _BLOCK.finditer(text):
        out.append(
            Block(
                info=m.group("info").strip(),
                body=m.group("body"),
                kind=m.group("kind"),
                arg=m.group("arg"),
                start=m.start("body"),
                end=m.end("body"),
                line=text.count("\n", 0, m.start("info")) + 1,
            )
        )
    return out


def script(path: Path, name: str) -> str:
    """The body of the bash block marked `<!-- test: name -->`."""
    found = [b for b in blocks(path.read_text()) if b.kind == "test" and b.arg == name]
    assert len(found) == 1, f"{path.name}: expected one block marked `test: {name}`"
    return found[0].body


def _compact(value: Any) -> Any:
    """Drop nulls: the guide shows what a producer must or may send, not every default."""
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


def example_json(ce_type: str) -> str:
    data = _compact(msgspec.to_builtins(EXAMPLES[ce_type]))
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def refresh(path: Path) -> bool:
    """Rewrite every `example:` block of `path` from the current examples; True if changed."""
    text = path.read_text()
    pieces, last = [], 0
    for block in blocks(text):
        if block.kind == "example" and block.arg is not None:
            pieces += [text[last : block.start], example_json(block.arg)]
            last = block.end
    new = "".join(pieces) + text[last:]
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(f"{arg}: {'rewritten' if refresh(Path(arg)) else 'up to date'}")
