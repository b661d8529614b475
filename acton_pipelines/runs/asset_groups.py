"""Asset group names, as they appear in the Dagster UI."""

CRM = "crm"
ACTON_CONTACTS = "acton_contacts"
SCORING = "scoring"
SEGMENTATION = "segmentation"
PUSH = "push"
