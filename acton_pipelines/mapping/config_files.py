"""The files of ``mapping_config/`` and what each must contain (named in every message)."""

CONTACT_MAPPING_FILE = "contact_mapping.yaml"
SCORE_SHEETS_FILE = "score_sheets.yaml"
SEGMENTS_FILE = "segments.yaml"

# What each file holds, for the "file is missing" and "unknown key" messages.
FILE_CONTENTS: dict[str, str] = {
    CONTACT_MAPPING_FILE: (
        "duplicate_email_policy, push_policy, standard_fields (a list of "
        "{destination, lead, contact, score_sheet, allow_push}) and custom_fields (a list of "
        "{destination, type, lead, contact, score_sheet, allow_push})"
    ),
    SCORE_SHEETS_FILE: (
        "score_sheets: a list of {name, description, profile_rules, behavior_rules}, "
        "one of them named 'default'"
    ),
    SEGMENTS_FILE: "affiliation (how the default segments decide) and segments (your own rules)",
}

# segments.yaml may be left out: the default segments and affiliation settings then apply.
REQUIRED_FILES = (CONTACT_MAPPING_FILE, SCORE_SHEETS_FILE)
