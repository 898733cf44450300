"""Model command line: ``build-default`` converts and registers YOLOv3-tiny, ``build-demo-classifier``
builds and registers the red/green/blue demo classifier, ``build-demo-multi-label`` its multi-label sibling
(which of red/green/blue are present), ``build-ocr`` registers the small PP-OCR models
(text detection, recognition, line orientation), ``register-ocr`` registers another PP-OCR model from its ONNX
file (e.g. ``pp-ocr/det-medium`` for a pp_ocr step's ``text_detection: medium``), ``list`` shows the repository.

Usage: ``python -m services.worker.models build-default [--repository DIR] [--downloads DIR] [--size 416]``,
``python -m services.worker.models build-demo-classifier [--repository DIR]``,
``python -m services.worker.models build-demo-multi-label [--repository DIR]``,
``python -m services.worker.models build-ocr [--repository DIR] [--downloads DIR]``,
``python -m services.worker.models register-ocr MODEL_ID ONNX_FILE [--characters FILE] [--repository DIR]``
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
from services.worker.models.classification_demo import build_demo_classifier, build_demo_multi_label
from services.worker.models.errors import ModelError
from services.worker.models.ocr_build import build_ocr_models, register_ocr_model
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
    multi = commands.add_parser("build-demo-multi-label",
                                help="build and register the multi-label classifier (which colours are present)")
    multi.add_argument("--repository", type=Path, default=DEFAULT_REPOSITORY)
    ocr = commands.add_parser("build-ocr", help="fetch and register the small PP-OCR models")
    ocr.add_argument("--repository", type=Path, default=DEFAULT_REPOSITORY)
    ocr.add_argument("--downloads", type=Path, default=DEFAULT_DOWNLOADS)
    own = commands.add_parser("register-ocr", help="register a PP-OCR ONNX model (pp-ocr/det-|rec-|cls-<size>)")
    own.add_argument("model_id", help="pp-ocr/det-<size>, pp-ocr/rec-<size> or pp-ocr/cls-<size>")
    own.add_argument("onnx", type=Path)
    own.add_argument("--characters", type=Path, help="a recogniser's characters, one a line (default: its metadata's)")
    own.add_argument("--repository", type=Path, default=DEFAULT_REPOSITORY)
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
        elif args.command == "build-demo-multi-label":
            spec = build_demo_multi_label(args.repository)
            print(f"{spec.model_id}\t{spec.onnx_path}")
        elif args.command == "build-ocr":
            for spec in build_ocr_models(args.repository, args.downloads):
                print(f"{spec.model_id}\t{spec.onnx_path}")
        elif args.command == "register-ocr":
            characters = args.characters.read_text(encoding="utf-8").removesuffix("\n").split("\n") \
                if args.characters else None
            spec = register_ocr_model(ModelRepository(args.repository), args.model_id, args.onnx.read_bytes(),
                                      source=str(args.onnx), characters=characters)
            print(f"{spec.model_id}\t{spec.onnx_path}")
        else:
            for spec in ModelRepository(args.repository).list():
                print(
                    f"{spec.model_id}\t{spec.layout or spec.task_type}\t{spec.input_width}x{spec.input_height}\t"
                    f"{spec.num_classes} classes\t{spec.created}"
                )
    except (ModelError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
