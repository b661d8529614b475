"""Writing back to the CRM: planning (scores, opt-out flags, three-way edits, new Leads),
sending batch by batch, and recording every write as sent and as answered."""
