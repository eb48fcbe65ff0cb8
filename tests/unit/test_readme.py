"""The README's options table lists every option with its environment and ini names."""

from pathlib import Path

from res2net_validate.settings import OPTIONS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_option_has_a_row_in_the_readme_table():
    rows = [line for line in README.read_text().splitlines() if line.startswith("| `--")]
    by_flag = {line.split("`")[1]: line for line in rows}
    assert set(by_flag) == {o.cli for o in OPTIONS}
    for option in OPTIONS:
        assert f"`{option.env}`" in by_flag[option.cli]
        assert f"`{option.ini}`" in by_flag[option.cli]
