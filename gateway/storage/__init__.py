"""Storage: SQLAlchemy 2 Core tables, Alembic migrations, the batch writer and queries."""
