"""Analysis of measured runs, numpy only: observations, explanations, equivalences,
reruns, the referee's checks and the port validator's judgements."""
