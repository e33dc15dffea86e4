"""`python -m horseshoe ...` (and `torchrun -m horseshoe train ...`) run the CLI."""

from horseshoe.cli import main

raise SystemExit(main())
