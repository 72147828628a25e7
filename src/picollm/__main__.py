"""``python -m picollm`` is the ``picollm`` command."""

import sys

from picollm.entry import main

sys.exit(main())
