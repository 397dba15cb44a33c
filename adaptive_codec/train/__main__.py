"""``python -m adaptive_codec.train …`` (also under torchrun)."""

from .cli import main

main()
