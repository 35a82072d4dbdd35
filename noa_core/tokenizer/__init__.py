"""The Phase 0 tokenizer: a categorical hierarchical VQ-VAE over behavioural features, and the
family encoders whose embeddings the NOA's feature heads learn. Trained once, then frozen."""
