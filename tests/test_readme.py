"""The README's API example, run as written against a launched app on the bundled preset."""

from __future__ import annotations

import re
from pathlib import Path

import app
from tests.conftest import free_port

README = Path(__file__).resolve().parent.parent / "README.md"


def api_example() -> str:
    section = README.read_text().split("## API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the API section should hold one python block"
    return blocks[0]


def test_readme_api_example_runs_against_the_app(tmp_path, monkeypatch):
    code = api_example()
    for endpoint in ("/text_to_image", "/describe", "/regenerate", "/style_transfer", "/instruct_edit", "/inpaint"):
        assert f'api_name="{endpoint}"' in code, f"the README shows no example for {endpoint}"
    blocks, url, _ = app.launch(app.parse_args(["--port", str(free_port())]), prevent_thread_lock=True, quiet=True)
    try:
        monkeypatch.chdir(tmp_path)
        scope: dict = {}
        exec(compile(code.replace("http://127.0.0.1:7860/", url), str(README), "exec"), scope)
    finally:
        blocks.close()
    assert scope["params"]["job"] == "inpaint" and Path(scope["gallery"][0]["image"]).is_file()
    assert isinstance(scope["description"], str) and scope["description"]
