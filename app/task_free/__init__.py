"""The service side of task-free answers (MAS.md §7): what a train job measures and fits, what a version
stores, and how a request that names no task is answered. The math is app/mas/class_statistics.py and
app/mas/task_free.py."""
