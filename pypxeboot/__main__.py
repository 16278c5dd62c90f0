import sys

from pypxeboot.cli import main

sys.exit(main())
