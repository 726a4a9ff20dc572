"""The HTTP shell: aiohttp routes that parse, authorise (identity from the TLS peer certificate)
and delegate to the registry, one module per function set; ``app.create_app`` assembles them."""
