"""Data: the unlabeled corpus, STS pair files, masking and batching."""
