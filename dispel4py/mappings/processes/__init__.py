"""Worker processes on this machine: the pool (start, watch, stop), what runs in a worker
process, and the mappings that run on it: ``multi``, ``zmq_multi``, ``dyn_multi``,
``dyn_auto_multi``."""
