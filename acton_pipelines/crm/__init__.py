"""Reading the CRM: a thin client over simple-salesforce, and the extraction of CRM objects."""
