"""``python -m adaptive_codec`` runs the command line."""
from .cli import main

raise SystemExit(main())
