"""The warehouse: Act-On Contacts and its satellite tables, on any SQLAlchemy 2 database.

``tables`` declares every table; ``schema`` creates and evolves them; ``staged_load`` loads
chunks through staging tables; ``sync_runs`` and ``catch_up`` keep each step's bookkeeping;
``resource`` is the warehouse resource and ``run_mappings`` the mapping resource (each run
takes one stored version of the mapping); ``summary`` counts what the tables hold.
"""
