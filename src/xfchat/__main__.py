import sys

from xfchat.cli import main

sys.exit(main())
