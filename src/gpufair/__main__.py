"""Allows ``python -m gpufair`` as an alias of the ``gpufair`` console script."""

from gpufair import cli

raise SystemExit(cli.main())
