"""Where the plugin keeps its run: the settings (resolved at configure, cheap) and the session (built on
first use, so a pytest session that never touches our tests never imports the pipeline)."""

from __future__ import annotations

import sys
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pytest

SETTINGS_KEY = pytest.StashKey[object]()
SESSION_KEY = pytest.StashKey[object]()
CHECKED_KEY = pytest.StashKey[bool]()  # the start-up checks ran (at configure, or at collection when quiet)


def is_controller_or_solo(config) -> bool:
    return not hasattr(config, "workerinput")


def options_given(settings) -> bool:
    """Whether any of our options was set (command line, environment or ini): the plugin is in use."""
    return any(source != "default" for source in settings.sources.values())


def session_of(config):
    """The run's ValidationSession, built on first use."""
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        from ..session import ValidationSession

        session = ValidationSession(config.stash[SETTINGS_KEY], progress=is_controller_or_solo(config),
                                    live_output=lambda: _live_output(config))
        config.stash[SESSION_KEY] = session
    return session


def check_at_start(config) -> None:
    """The start-up checks, once; a user mistake is one usage line before anything runs."""
    if config.stash.get(CHECKED_KEY, False):
        return
    from ..errors import ValidateError

    config.stash[CHECKED_KEY] = True
    outputs = {}
    benchmark_json = getattr(config.option, "benchmark_json", None)
    if benchmark_json is not None and not hasattr(benchmark_json, "write"):
        outputs[f"--benchmark-json {benchmark_json}"] = benchmark_json
    try:
        session = session_of(config)  # reads the card: a missing or malformed one is a usage error
        session.preflight.run({label: Path(path) for label, path in outputs.items()})
    except ValidateError as exc:
        raise pytest.UsageError(str(exc)) from None


def header_lines(config) -> list[str]:
    from .. import __version__
    from ..backends.devices import report_header_lines
    from ..settings import OPTIONS

    session = session_of(config)
    settings = session.settings
    lines = [f"res2net_validate {__version__}: {session.inputs.configured.describe()}"]
    described = [f"{o.cli[2:]}={settings.describe(o.name)}" + _resolved_backend(session, o.name) for o in OPTIONS
                 if settings.values[o.name] is not None or o.name in ("weights", "dataset_dir")]
    for start in range(0, len(described), 4):
        lines.append("  " + "  ".join(described[start:start + 4]))
    card = session.inputs.card
    lines.append(f"  card: {card.label} ({card.model_key}), {card.path}")
    lines.append(f"  thresholds file: {session.inputs.thresholds_path()}")
    return lines + report_header_lines()


def configured_preprocess(config):
    """The run's Preprocess: --preprocess, then the pytest_res2net_validate_preprocess hook's replacement."""
    preprocess = session_of(config).inputs.preprocess()
    return config.hook.pytest_res2net_validate_preprocess(config=config, preprocess=preprocess) or preprocess


def _resolved_backend(session, option_name: str) -> str:
    if option_name != "backend" or session.settings.backend != "auto":
        return ""
    return f" -> {session.backend.name}"


@contextmanager
def _live_output(config):
    """Let progress bars reach the terminal while pytest captures output."""
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else nullcontext():
        sys.stderr.write("\n")
        yield
