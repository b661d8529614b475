"""Act-On Contacts: the CRM's Leads and Contacts conformed into ``acton_contacts``.

``values`` conforms raw CRM values to the mapping's data types (value-level quarantine);
``candidates`` selects the records that become contacts (SQL over the CRM mirror);
``act_on_values`` keeps Act-On's side (opt-outs, Act-On-only fields, edits); ``build`` writes
``acton_contacts`` and its quarantine; ``frames`` reads it back for scores and segments;
``assets`` holds the Dagster asset and its checks.
"""
