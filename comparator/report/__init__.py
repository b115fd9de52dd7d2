"""Rendering of a report: terminal, Markdown, HTML (with plots), artifacts."""
