"""The CRM side: reading Salesforce into the mirror tables.

``client`` is a thin client over simple-salesforce with its retries; ``resource`` the Dagster
resource that logs in (sandbox, password or client credentials); ``extract`` and ``sync`` read
each object into its ``crm_*`` mirror table (``objects`` says which fields), with the deletion
log and the mass-delete guard beside them; ``assets`` holds the ``crm_*`` assets.
``sandbox_connection`` reaches the sandbox CRM (``crm_sandbox``) through its public API.
"""
