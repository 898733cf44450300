"""``python -m services.client``: the ``vsim`` command line (:mod:`services.client.cli`)."""

import sys

from services.client.cli import main

if __name__ == "__main__":
    sys.exit(main())
