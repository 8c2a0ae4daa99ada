"""The inventory database: SQLAlchemy models, Alembic migrations, the admission recorder and
read-only queries. Only this package imports SQLAlchemy; everything it hands out is plain data."""
