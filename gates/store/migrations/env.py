"""Alembic environment of the store.

There is no ``alembic.ini``: :func:`gates.store.store.alembic_config` builds the configuration
in code and hands over an open connection, so migrations run the same from a checkout or an
installed package, from any working directory. To draft a new revision against a database at
the current head::

    from alembic import command
    from gates.store.store import Store, alembic_config

    store = Store("sqlite:///draft.db")
    store.migrate()
    with store.engine.begin() as connection:
        command.revision(alembic_config(connection), message="...", autogenerate=True)

then edit the draft into explicit ``sa.*`` types (no imports from the package), as 0001 does.
"""

from alembic import context

from gates.store.tables import ALEMBIC_VERSION_TABLE, metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "the store's migrations need an open connection: run them through Store.migrate()"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=ALEMBIC_VERSION_TABLE,
    compare_type=True,
    render_as_batch=True,  # SQLite can only ALTER a table by copying it; batch mode does that
)
with context.begin_transaction():
    context.run_migrations()
