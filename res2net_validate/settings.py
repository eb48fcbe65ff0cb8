"""Every option of the plugin, settable on the command line, in the environment or in
the ini file — in that order of precedence, as pytest-timeout does.

``resolve(config)`` returns a ``Settings`` whose ``sources`` say where each value came
from; the report header prints both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .constants import BACKEND_NAMES, CALIBRATION_METHODS, INT8_FLAVOURS, PRECISIONS, PREPROCESS_METHODS
from .errors import ValidateError


def _precisions(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(p.strip().lower() for p in text.replace(" ", ",").split(",") if p.strip()))
    bad = [p for p in names if p not in PRECISIONS]
    if bad or not names:
        raise ValueError(f"expected one or more of {', '.join(PRECISIONS)} (comma separated)")
    return names


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return value

    return parse


def _number(convert: Callable[[str], Any], accepts: Callable[[Any], bool], expected: str) -> Callable[[str], Any]:
    """A parser of one number that ``accepts`` must hold for (a comparison never holds for NaN, so NaN is
    refused wherever a range is checked)."""
    def parse(text: str):
        value = convert(text)
        if not accepts(value):
            raise ValueError(f"expected {expected}")
        return value

    return parse


_positive_int = _number(int, lambda v: v > 0, "a positive integer")
_non_negative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
_seconds = _number(float, lambda v: v > 0, "a number of seconds > 0")
_percent = _number(float, lambda v: 0.0 < v <= 100.0, "a percentile in (0, 100], e.g. 99.999")
_alpha = _number(float, lambda v: 0.0 < v < 0.5, "a significance level in (0, 0.5), e.g. 0.05")
_points = _number(float, lambda v: 0.0 <= v <= 100.0, "points of accuracy in [0, 100], e.g. 0.5")
_seed_number = _number(int, lambda v: v >= 0, "a non-negative integer or 'random'")


DRAWN_SEED_ENV = "RES2NET_DRAWN_SUBSET_SEED"


def _seed(text: str) -> int:
    """A subset seed: a non-negative integer, or ``random`` for a fresh one each run (recorded)."""
    if text.strip().lower() == "random":
        # Drawn once, by the first process that resolves the options; xdist workers, spawned later,
        # inherit the environment and so score the same subset as the controller.
        if DRAWN_SEED_ENV not in os.environ:
            import secrets

            os.environ[DRAWN_SEED_ENV] = str(secrets.randbelow(2**31))
        return int(os.environ[DRAWN_SEED_ENV])
    return _seed_number(text)


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true/false")


def _card(text: str) -> str:
    if not text.strip():
        raise ValueError("expected a packaged card's name or the path of a card YAML file")
    text = text.strip()
    return os.path.expanduser(os.path.expandvars(text)) if ("/" in text or text.endswith((".yaml", ".yml"))) else text


def _path(text: str) -> Path:
    return Path(os.path.expandvars(text)).expanduser()


def _default_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("res2net_validate"))


def command_cache_dir(cache_dir: Path | None) -> Path:
    """A command's --cache-dir, else $CHECKPOINTS_DIR, else the user cache dir: the plugin's order."""
    return Path(cache_dir) if cache_dir else Path(os.environ.get("CHECKPOINTS_DIR") or _default_cache_dir())


@dataclass(frozen=True)
class Option:
    name: str
    env: str | None
    parse: Callable[[str], Any]
    help: str
    default: Any = None
    flag: bool = False  # a CLI switch taking no value
    metavar: str | None = None

    @property
    def cli(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "res2net_" + self.name


OPTIONS: tuple[Option, ...] = (
    Option("precision", "RES2NET_PRECISION", _precisions, "precisions to validate, comma separated or repeated: "
           "fp32, fp16, int8", default=("fp16", "int8"), metavar="P[,P]"),
    Option("backend", "RES2NET_BACKEND", _choice(BACKEND_NAMES), "auto (TensorRT where usable, else ONNX Runtime), "
           "onnxruntime, tensorrt or torch", default="auto"),
    Option("card", "RES2NET_CARD", _card, "the model card to validate: a packaged card's name (the "
           "files of thresholds/, res2net50 by default) or the path of a card YAML file", default="res2net50",
           metavar="NAME|FILE"),
    Option("weights", "RES2NET_WEIGHTS", _path, "the card's checkpoint (.pth or .safetensors); default: the card's "
           "released file (res2net50_14w_8s-6527dddc.pth for res2net50) in the checkpoints dir if present",
           metavar="FILE"),
    Option("dataset_dir", "DATASETS_DIR", _path, "ImageNet val root (any supported layout)", metavar="DIR"),
    Option("checkpoints_dir", "CHECKPOINTS_DIR", _path, "artifact cache: ONNX graphs, engines, preprocessed "
           "images (default: the user cache dir)", metavar="DIR"),
    Option("embedded", "RES2NET_EMBEDDED", _flag, "run on the embedded default: generated images and a stand-in "
           "checkpoint of the card's model, with the card's embedded: thresholds", default=False, flag=True),
    Option("batch_size", "RES2NET_BATCH_SIZE", _positive_int, "batch size for scoring and FPS", default=32),
    Option("num_images", "RES2NET_NUM_IMAGES", _positive_int, "score a seeded subset of this many images "
           "(--subset-seed)"),
    Option("subset_seed", "RES2NET_SUBSET_SEED", _seed, "which --num-images subset: a fixed seed (the same "
           "images every run, reproducible verdicts) or 'random' (a new subset each run, so nights are "
           "independent; the seed drawn is recorded in the results JSON)", default=0, metavar="SEED|random"),
    Option("thresholds", "RES2NET_THRESHOLDS", _path, "thresholds YAML replacing the card's (default: the card's "
           "own, or its embedded: section with --embedded)", metavar="FILE"),
    Option("calib_method", "RES2NET_CALIB_METHOD", _choice(CALIBRATION_METHODS), "INT8 calibration method",
           default="entropy"),
    Option("calib_percentile", "RES2NET_CALIB_PERCENTILE", _percent, "clip each activation at this percentile of "
           "|x| (with --calib-method percentile)", default=99.999, metavar="Q"),
    Option("int8_flavour", "RES2NET_INT8_FLAVOUR", _choice(INT8_FLAVOURS), "which INT8 Q/DQ "
           "graph to run: auto (the backend's own), onnxruntime (unsigned activations), or tensorrt (signed "
           "symmetric; scores on a CPU the exact graph TensorRT consumes)", default="auto"),
    Option("calib_count", "RES2NET_CALIB_COUNT", _positive_int, "INT8 calibration images (default: 500, at most a "
           "fifth of the dataset when carved from val)"),
    Option("calib_dir", "RES2NET_CALIB_DIR", _path, "images to calibrate INT8 on (default: a seeded split of the "
           "val set, disjoint from the scored images)", metavar="DIR"),
    Option("calib_list", "RES2NET_CALIB_LIST", _path, "a list file of calibration image names, one per line "
           "(e.g. MLPerf's 500-image list): looked up under --calib-dir, else picked from the val set and held "
           "out of scoring", metavar="FILE"),
    Option("calib_on_scored", "RES2NET_CALIB_ON_SCORED", _flag, "calibrate on images that are also scored "
           "(the card's leak; flagged in the report)", default=False, flag=True),
    Option("preprocess", "RES2NET_PREPROCESS", _choice(PREPROCESS_METHODS), "exact (PIL, bit-exact to "
           "torchvision) or fast (tensor decode and resize)", default="exact"),
    Option("skip_bad_images", "RES2NET_SKIP_BAD_IMAGES", _flag, "skip undecodable images, counting them as wrong "
           "answers (default: one clear error naming the file)", default=False, flag=True),
    Option("workers", "RES2NET_WORKERS", _positive_int, "image decoding workers (default: all cores)"),
    Option("perf_rounds", "RES2NET_PERF_ROUNDS", _positive_int, "timed rounds per FPS benchmark", default=20),
    Option("perf_warmup", "RES2NET_PERF_WARMUP", _non_negative_int, "warm-up rounds per FPS benchmark", default=3),
    Option("alpha", "RES2NET_ALPHA", _alpha, "per-run error rate: the chance that a run "
           "meeting every target fails any sampled verdict (Bonferroni over the run's sampled verdicts)", default=0.05),
    Option("require_shown", "RES2NET_REQUIRE_SHOWN", _flag, "fail accuracy verdicts that are 'not shown' "
           "(neither confidently met nor missed), not only 'missed' ones: a release gate", default=False, flag=True),
    Option("allow_untargeted", "RES2NET_ALLOW_UNTARGETED", _flag, "measure and report a selected precision that "
           "has no accuracy target in the thresholds file (default: its test fails)", default=False, flag=True),
    Option("save_baseline", "RES2NET_SAVE_BASELINE", _path, "write each precision's per-image top-5 predictions "
           "here, for --compare-baseline on a later run", metavar="FILE"),
    Option("compare_baseline", "RES2NET_COMPARE_BASELINE", _path, "fail a precision confidently worse than this "
           "baseline on the images both scored, by more than --baseline-allowance", metavar="FILE"),
    Option("baseline_allowance", "RES2NET_BASELINE_ALLOWANCE", _points, "points of Top-1/Top-5 a precision "
           "may lose against --compare-baseline (the same paired test as max_drop_vs_fp32)", default=0.0,
           metavar="POINTS"),
    Option("report_json", "RES2NET_REPORT_JSON", _path, "write the results table as JSON here (default: next to "
           "--benchmark-json)", metavar="FILE"),
    Option("lock_timeout", "RES2NET_LOCK_TIMEOUT", _seconds, "give up after this many seconds waiting for another "
           "process that builds the same cached artifact (default: wait)", metavar="SECONDS"),
    Option("report_dir", "RES2NET_REPORT_DIR", _path, "at the end of the run write report.md and report.html "
           "(plots need the 'report' extra) here, with the results JSON and, unless --benchmark-json is given, "
           "benchmark.json", metavar="DIR"),
)

BY_NAME = {o.name: o for o in OPTIONS}


@dataclass
class Settings:
    values: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def describe(self, name: str) -> str:
        value = self.values[name]
        if isinstance(value, tuple):
            value = ",".join(map(str, value))
        return f"{value} ({self.sources[name]})"


def add_options(parser) -> None:
    group = parser.getgroup("res2net", "res2net_validate: a model-zoo card as acceptance tests")
    for option in OPTIONS:
        env_help = f" [env {option.env}]" if option.env else ""
        if option.flag:
            group.addoption(option.cli, action="store_const", const="true", default=None, dest=f"res2net_{option.name}",
                            help=option.help + env_help)
        else:
            group.addoption(option.cli, action="append" if option.name == "precision" else "store", default=None,
                            dest=f"res2net_{option.name}", metavar=option.metavar, help=option.help + env_help)
        parser.addini(option.ini, option.help, default=None)


def _command_line_values(config, option: Option) -> list[str]:
    """A repeatable option's values from the command line itself.  pytest puts PYTEST_ADDOPTS and the
    ini's addopts in front of the command line and argparse appends them all; the command line must
    override them as it does for every other option, and repeating it there still adds up."""
    args = [str(a) for a in getattr(config.invocation_params, "args", ())]
    values = []
    for i, arg in enumerate(args):
        if arg == option.cli and i + 1 < len(args):
            values.append(args[i + 1])
        elif arg.startswith(option.cli + "="):
            values.append(arg.split("=", 1)[1])
    return values


def resolve(config) -> Settings:
    """CLI > environment > ini > default, each value parsed and checked."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    ini_dir = Path(config.inipath).parent if getattr(config, "inipath", None) else Path(config.rootpath)
    for option in OPTIONS:
        raw, source = config.getoption(f"res2net_{option.name}"), option.cli
        if isinstance(raw, list):
            raw = ",".join(_command_line_values(config, option) or raw)
        if raw is None and option.env and os.environ.get(option.env, "") != "":
            raw, source = os.environ[option.env], f"env {option.env}"
        if raw is None:
            ini_value = config.getini(option.ini)
            if ini_value not in (None, "", []):
                raw, source = str(ini_value), f"ini {option.ini}"
        if raw is None:
            values[option.name], sources[option.name] = option.default, "default"
            continue
        try:
            value = option.parse(str(raw))
        except ValueError as exc:
            raise ValidateError(f"{option.cli}={raw!r} (from {source}): {exc}") from None
        if isinstance(value, Path) and os.path.expanduser(os.path.expandvars(raw)) != raw:  # ~ or $VAR: say so
            source = f"{source}, expanded from {str(raw)!r}"
        if isinstance(value, Path) and source.startswith("ini") and not value.is_absolute():
            value = ini_dir / value  # ini paths are relative to the ini file, like pytest's own
        values[option.name], sources[option.name] = value, source
    if values["checkpoints_dir"] is None:
        values["checkpoints_dir"], sources["checkpoints_dir"] = _default_cache_dir(), "default"
    return Settings(values, sources)


def misplaced_rootdir(invocation_dir: Path, inipath, rootpath, args) -> str | None:
    """Why pytest's rootdir is wrong, or None.  pytest picks its rootdir before plugins load, so the
    value in ``--weights /x/w.pth`` counts as a test path and can move the rootdir away from our pytest.ini."""
    local_ini = invocation_dir / "pytest.ini"
    if not local_ini.is_file() or inipath == local_ini:
        return None
    spaced = _spaced_path_options([a for a in args if isinstance(a, str)], invocation_dir)
    return (f"pytest chose rootdir {rootpath} and ignored {local_ini}, because an option value looked like "
            f"a test path. Write the value with '=': " + ", ".join(f"{a}=VALUE" for a in spaced or ["--weights"])
            + " (or set it in the environment).")


def _spaced_path_options(args: list[str], invocation_dir: Path) -> list[str]:
    """Our options written ``--name VALUE`` whose VALUE pytest could have taken for a test path: only
    options that take a value (``--embedded=1`` is an error), and only values that look like a path."""
    valued = {o.cli for o in OPTIONS if not o.flag}
    return [option for option, value in zip(args, args[1:] + [""])
            if option in valued and value and not value.startswith("-")
            and (os.sep in value or "/" in value or (invocation_dir / value).exists())]
