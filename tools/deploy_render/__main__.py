"""``python -m tools.deploy_render [--check] [--root DIR]``."""

import sys

from tools.deploy_render.render import main

sys.exit(main())
