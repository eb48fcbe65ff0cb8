"""The README's options table lists every option with its environment and ini names."""

import re
from pathlib import Path

from res2net_validate.settings import OPTIONS, _path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_option_has_a_row_in_the_readme_table():
    rows = [line for line in README.read_text().splitlines() if line.startswith("| `--")]
    by_flag = {line.split("`")[1]: line for line in rows}
    assert set(by_flag) == {o.cli for o in OPTIONS}
    for option in OPTIONS:
        assert f"`{option.env}`" in by_flag[option.cli]
        assert f"`{option.ini}`" in by_flag[option.cli]


def test_documented_pytest_commands_write_path_values_with_equals():
    """pytest picks its rootdir before plugins load, so ``--weights /x/w.pth`` moves it away from our pytest.ini
    and the plugin refuses the run: a copied command from the docs must not do that."""
    path_options = {o.cli for o in OPTIONS if o.parse is _path}
    assert {"--weights", "--dataset-dir"} <= path_options
    pattern = re.compile(r"(" + "|".join(map(re.escape, sorted(path_options, key=len, reverse=True))) + r") +[^-\s]")
    spaced = [f"{doc.name}:{number}: {line.strip()}"
              for doc in [README, *sorted((README.parent / "docs").glob("*.md"))]
              for number, line in enumerate(doc.read_text().splitlines(), 1) if pattern.search(line)]
    assert spaced == []
