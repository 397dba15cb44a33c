"""``python -m adaptive_codec.train …`` (also under torchrun): the ``train`` command group."""

import sys

from adaptive_codec.cli.app import main

sys.exit(main(["train", *sys.argv[1:]]))
