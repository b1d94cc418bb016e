"""Results: pure data (model) and its writers (JSON, terminal). Nothing here runs anything."""
