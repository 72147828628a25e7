"""``python -m picollm`` is the ``picollm`` command."""

import sys

from picollm.cli import main

sys.exit(main())
