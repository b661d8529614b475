"""The mapping: which CRM fields feed which Act-On Contacts fields, scores and segments.

``load_mapping(Path("mapping_config"))`` returns a checked ``Mapping`` or raises
``MappingError`` listing every problem with its file, entry, line and fix.
``check_against_crm`` adds the checks that need the CRM's ``describe()``;
``head_start_mapping`` writes a first ``contact_mapping.yaml`` from it.
"""

from acton_pipelines.mapping.crm_rules import (
    COMPATIBLE_CRM_TYPES,
    CrmField,
    canonical_crm_fields,
    check_against_crm,
    with_canonical_crm_fields,
)
from acton_pipelines.mapping.head_start import head_start_mapping
from acton_pipelines.mapping.loader import load_mapping
from acton_pipelines.mapping.models import (
    BUILTIN_COLUMNS,
    DEFAULT_SCORE_SHEET,
    DEFAULT_SEGMENTS,
    MAX_SCORE,
    PRIMARY_SCORE_FIELD,
    STANDARD_FIELDS,
    ActivityType,
    Affiliation,
    AllOf,
    AnyOf,
    BehaviorRule,
    Condition,
    ConditionOp,
    DataType,
    DuplicateEmailPolicy,
    FieldMapping,
    Mapping,
    ProfileRule,
    PushPolicy,
    Rule,
    ScoreSheet,
    SegmentRule,
    column_name,
)
from acton_pipelines.mapping.problems import MappingError, MappingProblem
from acton_pipelines.mapping.rules import check_mapping

__all__ = [
    "BUILTIN_COLUMNS",
    "COMPATIBLE_CRM_TYPES",
    "DEFAULT_SCORE_SHEET",
    "DEFAULT_SEGMENTS",
    "MAX_SCORE",
    "PRIMARY_SCORE_FIELD",
    "STANDARD_FIELDS",
    "ActivityType",
    "Affiliation",
    "AllOf",
    "AnyOf",
    "BehaviorRule",
    "Condition",
    "ConditionOp",
    "CrmField",
    "DataType",
    "DuplicateEmailPolicy",
    "FieldMapping",
    "Mapping",
    "MappingError",
    "MappingProblem",
    "ProfileRule",
    "PushPolicy",
    "Rule",
    "ScoreSheet",
    "SegmentRule",
    "canonical_crm_fields",
    "check_against_crm",
    "check_mapping",
    "column_name",
    "head_start_mapping",
    "load_mapping",
    "with_canonical_crm_fields",
]
