"""``python -m adaptive_codec.train …`` (also under torchrun): the ``train`` command group."""

import sys

from ..cli import main

sys.exit(main(["train", *sys.argv[1:]]))
