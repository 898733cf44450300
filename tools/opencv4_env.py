"""A virtual environment with OpenCV 4, whose own Darknet reader is the converter's oracle.

The project pins OpenCV 5, which no longer reads Darknet files (``cv2.dnn.readNetFromDarknet`` is
gone); OpenCV 4 still does. ``tests/worker/models/test_darknet_oracle.py`` runs the same cfg/weights
through that reader and through our Darknet -> ONNX converter and compares the detections, so this
environment holds only the two PyPI wheels it needs, pinned, apart from the project's ``.venv``.

Idempotent: an environment already built from the same requirements (its ``requirements.txt``) is
left alone. ``make setup`` builds it; the test builds it too when it is missing.
Usage: ``python -m tools.opencv4_env [--dest data/opencv4]``
"""

import argparse
import logging
import sys
from pathlib import Path

from tools import side_env

DEFAULT_DEST = Path("data/opencv4")
REQUIREMENTS = ("opencv-python-headless==4.11.0.86", "numpy==2.2.6")
python_of = side_env.python_of


def ensure(dest: Path = DEFAULT_DEST) -> Path:
    """The interpreter of the OpenCV 4 environment at ``dest``, built (with pip, from PyPI) unless current."""
    return side_env.ensure(dest, REQUIREMENTS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        python = ensure(args.dest)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    print(f"OpenCV 4 oracle ready: {python}")


if __name__ == "__main__":
    main()
