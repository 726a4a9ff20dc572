"""Translation between 2030.5 documents and the resource models, one module per function set.
``parse_*`` functions take a parsed root element and raise XmlError; ``render_*`` functions return
the UTF-8 bytes of a schema-valid document."""
