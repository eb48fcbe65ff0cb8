"""``res2net-validate``: the pipeline stages on their own, outside pytest.

One module of this package per subcommand, each adding itself through ``register_cli(subparsers)``
and calling the same functions the plugin's session calls, so a command and a pytest run share
their cache entries. The domain modules (data, embedded, graphs, reports) know nothing of argparse.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__
from ..errors import ValidateError

STAGE_MODULES = ("data", "embedded", "export", "quantize", "report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="res2net-validate", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in STAGE_MODULES:
        importlib.import_module(f"res2net_validate.cli.{name}").register_cli(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValidateError as exc:
        print(f"res2net-validate {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
