"""Running the ``facekp`` command in-process, and what a user's mistake must look like: one
line on stderr, ``facekp COMMAND: error: ...``, exit status 2, no traceback."""
from __future__ import annotations

from facekp.core.cli import main as cli


def run(capsys, *argv) -> tuple[int, str, str]:
    """``facekp ARGV`` -> (exit status, stdout, stderr)."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *words) -> None:
    """Exit 2 and one ``facekp COMMAND: error: ...`` line holding every one of ``words``."""
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("facekp ") and ": error: " in lines[0], lines[0]
    for w in words:
        assert str(w) in lines[0], lines[0]
