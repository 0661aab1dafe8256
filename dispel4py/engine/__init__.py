"""What every mapping stands on: the plan, placement, routing, the static executor loop,
failures and replay files. Imports only the user model (core, base, workflow_graph, errors)."""
