"""Jobs: long work (training a task, refreshing importance) done by a worker; the row is the truth."""
