"""A user's own pair of models: loading them from specs and files (`loader`), pairing
their weighted layers (`pairing`), and setting them up for a comparison (`setup`)."""
