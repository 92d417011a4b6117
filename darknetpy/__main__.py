"""``python -m darknetpy``: the darknetpy command line."""
import sys

from .cli import main

sys.exit(main())
