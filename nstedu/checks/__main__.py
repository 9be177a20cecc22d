"""``python -m nstedu.checks grade exercises/*.ipynb``."""
from .grading import main

raise SystemExit(main())
