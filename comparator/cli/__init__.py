"""Command lines: argument parsing with one-line errors, progress, exit codes."""
