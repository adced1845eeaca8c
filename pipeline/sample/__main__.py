"""`python -m pipeline.sample`: build the embedded demo WARC."""
from pipeline.sample import main

raise SystemExit(main())
