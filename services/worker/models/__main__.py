"""Model command line: ``build-default`` converts and registers YOLOv3-tiny, ``build-demo-classifier``
builds and registers the red/green/blue demo classifier, ``list`` shows the repository.

Usage: ``python -m services.worker.models build-default [--repository DIR] [--downloads DIR] [--size 416]``,
``python -m services.worker.models build-demo-classifier [--repository DIR]``
and ``python -m services.worker.models list [--repository DIR]``.
"""

import argparse
import logging
import sys
from pathlib import Path

from services.worker.models.build import (
    DEFAULT_DOWNLOADS,
    DEFAULT_REPOSITORY,
    DEFAULT_SIZE,
    build_default_model,
)
from services.worker.models.classification_demo import build_demo_classifier
from services.worker.models.errors import ModelError
from services.worker.models.repository import ModelRepository


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.worker.models")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build-default", help="fetch, convert and register YOLOv3-tiny COCO")
    build.add_argument("--repository", type=Path, default=DEFAULT_REPOSITORY)
    build.add_argument("--downloads", type=Path, default=DEFAULT_DOWNLOADS)
    build.add_argument(
        "--size", type=int, default=DEFAULT_SIZE, help="input width and height (multiple of 32)"
    )
    demo = commands.add_parser("build-demo-classifier", help="build and register the red/green/blue classifier")
    demo.add_argument("--repository", type=Path, default=DEFAULT_REPOSITORY)
    listing = commands.add_parser("list", help="list the registered models")
    listing.add_argument("--repository", type=Path, default=DEFAULT_REPOSITORY)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "build-default":
            spec = build_default_model(args.repository, args.downloads, args.size)
            print(f"{spec.model_id}\t{spec.onnx_path}")
        elif args.command == "build-demo-classifier":
            spec = build_demo_classifier(args.repository)
            print(f"{spec.model_id}\t{spec.onnx_path}")
        else:
            for spec in ModelRepository(args.repository).list():
                print(
                    f"{spec.model_id}\t{spec.layout or spec.task_type}\t{spec.input_width}x{spec.input_height}\t"
                    f"{spec.num_classes} classes\t{spec.created}"
                )
    except (ModelError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
