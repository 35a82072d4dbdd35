"""NOA training: replay windows, alignment losses against the frozen tokenizer, the trainer."""
