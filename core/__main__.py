"""Run the command-line interface: python -m core --help."""
import sys

from core.cli import main

sys.exit(main())
