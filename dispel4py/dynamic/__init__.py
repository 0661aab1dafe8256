"""The dynamic engine: which PEs are pinned and which shared, the task-queue interface that a
transport implements, the worker loop, the coordinator's counting and the autoscaling policy.
Imports the engine and the user model, never a mapping."""
