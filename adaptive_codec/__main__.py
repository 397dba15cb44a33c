"""``python -m adaptive_codec`` runs the command line."""
from adaptive_codec.cli.app import main

raise SystemExit(main())
