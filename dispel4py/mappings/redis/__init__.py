"""The Redis mappings (``dyn_redis``, ``dyn_auto_redis``, ``hybrid_redis``, ``redis``): the
dynamic engine's task queues on Redis Streams, the server, and joining a run from another host."""
