"""Development tools (benchmark, behaviours-document generator); not installed."""
