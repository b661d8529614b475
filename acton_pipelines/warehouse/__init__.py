"""The warehouse: Act-On Contacts and its satellite tables, on any SQLAlchemy 2 database."""
