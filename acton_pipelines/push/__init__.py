"""Writing back to the CRM: scores and opt-outs (more in a later issue), always logged."""
