"""The README's example runs and prints what the README says it prints."""

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def example_and_output():
    text = README.read_text(encoding="utf-8")
    section = text.split("## Using `mininn`", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)
    code = [body for language, body in blocks if language == "python"]
    printed = [body for language, body in blocks if language == "text"]
    assert len(code) == 1 and len(printed) == 1, "the section needs one python and one text block"
    return code[0], printed[0]


def test_readme_example_prints_its_documented_output():
    code, expected = example_and_output()
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
    assert stdout.getvalue() == expected
