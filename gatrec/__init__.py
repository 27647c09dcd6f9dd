"""gatrec: a graph-attention recommender with an MLflow-centred lifecycle."""

__version__ = "0.1.0"
