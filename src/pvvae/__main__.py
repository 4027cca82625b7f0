"""``python -m pvvae`` is the ``pvvae`` command (torchrun uses this form)."""

import sys

from pvvae.cli.main import main

sys.exit(main())
