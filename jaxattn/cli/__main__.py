import sys

from jaxattn.cli.commands import main

sys.exit(main())
