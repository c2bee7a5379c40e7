import sys

from canaryflow.cli import main

sys.exit(main())
