"""What a run tells its user: per-input and run `stats` (the kept/removed/error accounting),
`logs` (JSON-lines logs under OUT/logs/) and `page` (report.html with charts and examples)."""
