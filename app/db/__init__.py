"""The database layer: typed ORM tables, the engine (SQLite tuned for two processes), migrations."""
