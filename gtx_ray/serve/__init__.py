"""HTTP fronts: the REST API on Ray Serve (port 4040)."""
