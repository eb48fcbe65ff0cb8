"""The self-test runs the suite in-process by default (tests/plugin/conftest.py): its guard against
importing a native extension a second time into one interpreter must name the module."""

import sys

import pytest

IMPORTS_A_NEW_EXTENSION = "import PIL.ImageMorph  # PIL._imagingmorph: no test of ours loads it\n\n" \
                          "def test_nothing():\n    pass\n"


def test_an_in_process_run_that_loads_a_new_native_extension_fails_naming_it(suite):
    assert "PIL._imagingmorph" not in sys.modules, "pick another extension: this one is loaded already"
    (suite.path / "tests" / "test_native.py").write_text(IMPORTS_A_NEW_EXTENSION)
    with pytest.raises(AssertionError, match=r"native extensions \['PIL\._imagingmorph'\].*NATIVE_LIBRARIES"):
        suite.run("tests/test_native.py", cache=False)
