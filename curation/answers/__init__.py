"""Gold and predicted answers: normalization per answer type (and, later, extraction and matching)."""
