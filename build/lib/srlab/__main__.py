import sys

from srlab.cli import main

sys.exit(main())
