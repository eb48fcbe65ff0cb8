"""``res2net-validate data``: detect an ImageNet validation layout and list its labels.

Calls ``data.layouts.discover``, as the session does for ``--dataset-dir``.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..data.layouts import discover


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="detect an ImageNet validation layout and show its images and labels",
        description="Detect the dataset layout under DIR, check its labels, and print a summary "
        "(or, with --list, one 'filename<TAB>label' line per image, sorted by file name).",
    )
    parser.add_argument("directory", metavar="DIR", help="ImageNet validation folder")
    parser.add_argument("--list", action="store_true", help="print 'filename<TAB>label' for every image")
    parser.set_defaults(func=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    from ..settings import BY_NAME

    directory = BY_NAME["dataset_dir"].parse(args.directory)  # ~ and $VAR, as --dataset-dir expands them
    if str(directory) != args.directory:
        print(f"dataset: {args.directory} expanded to {directory}", file=sys.stderr)
    index = discover(directory)
    if args.list:
        try:
            sys.stdout.writelines(f"{image.name}\t{image.label}\n" for image in index.images)
            sys.stdout.flush()
        except BrokenPipeError:  # `... --list | head`: the reader has all it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    print(f"layout: {index.layout}")
    print(index.describe())
    for note in index.notes:
        print(f"  {note}")
    return 0
