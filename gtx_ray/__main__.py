"""``python -m gtx_ray``: see gtx_ray.cli."""

import sys

from gtx_ray.cli import main

sys.exit(main())
