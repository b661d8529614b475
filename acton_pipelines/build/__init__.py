"""Building the Act-On tables in the warehouse from the CRM mirror, chunk by chunk."""
