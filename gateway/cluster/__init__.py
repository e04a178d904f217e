"""Several gateway workers on one PostgreSQL and one broker, the site being the unit of work
(docs/cluster.md)."""
