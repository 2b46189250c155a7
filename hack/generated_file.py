"""Writing a generated file, or checking that the committed copy is up to date."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_or_check(path: Path, content: str, *, check: bool, command: str) -> int:
    """Write `content` to `path`, or with `check` compare them and return the exit status.

    In check mode the file is left alone. A difference prints a unified diff from the committed
    file to the generated content on stdout, names `command` as the fix on stderr and returns 1.
    """
    relative = path.relative_to(ROOT)
    if not check:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        print(f"wrote {relative}")
        return 0

    committed = path.read_text(encoding="utf-8") if path.exists() else ""
    if committed == content:
        return 0
    diff = difflib.unified_diff(
        committed.splitlines(keepends=True),
        content.splitlines(keepends=True),
        fromfile=f"{relative} (committed)",
        tofile=f"{relative} (generated)",
    )
    sys.stdout.writelines(diff)
    print(f"{relative} is out of date: run {command} and commit the result", file=sys.stderr)
    return 1
