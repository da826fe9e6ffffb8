import sys

from jaxattn.cli.main import main

sys.exit(main())
