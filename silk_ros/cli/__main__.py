"""``python -m silk_ros.cli`` = ``silk-vo``."""

import sys

from silk_ros.cli import main

sys.exit(main())
