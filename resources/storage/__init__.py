"""Storage: the warehouse tables and their writes and reads, the Delta Lake copy, backup and retention."""
