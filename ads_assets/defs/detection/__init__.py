"""Detection: per-month models, transaction scores with reasons, missing recurring payments."""
