"""Self-refinement (PaD's refinement, LEMA's correction format): a student's failed programs with
the interpreter's feedback, repaired, stored with their lineage (docs/refinement.md)."""
