"""pytest wiring for res2net_validate (filled in by the plugin work)."""
