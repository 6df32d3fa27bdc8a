"""`python -m xlmr_ds` is the same as the `xlmr-ds` console script."""

from xlmr_ds.cli.main import main

raise SystemExit(main())
