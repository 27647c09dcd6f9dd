"""Training: config (``config``), BPR sampling (``sampler``), the loop with early stopping and resume
(``loop.train``), checkpoints (``checkpoint``) and the pickle-free model export (``export``)."""
