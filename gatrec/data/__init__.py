"""Data: reading raw dumps, cleaning, splitting, and the prepared dataset folder."""

from gatrec.data.dataset import Dataset

__all__ = ["Dataset"]
