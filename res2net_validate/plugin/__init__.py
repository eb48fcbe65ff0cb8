"""pytest wiring: hooks, fixtures, hook specifications, the results file."""
