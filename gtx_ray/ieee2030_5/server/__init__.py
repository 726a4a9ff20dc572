"""The IEEE 2030.5 server: routes (api), resource logic (managers), documents (mappers), the
registry and its durable store, and the TLS fronts that host them (an actor or Serve replicas)."""
