from alembic import context
from sqlalchemy import create_engine

import models

config = context.config
engine = create_engine(config.get_main_option("sqlalchemy.url"))
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=models.Base.metadata,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
