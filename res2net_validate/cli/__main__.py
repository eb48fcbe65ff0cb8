"""``python -m res2net_validate.cli``: the same as the ``res2net-validate`` console script."""

import sys

from . import main

sys.exit(main())
