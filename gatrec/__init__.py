"""gatrec: a graph-attention recommender with an MLflow-centred lifecycle."""

import warnings

__version__ = "0.1.0"

# PyG scripts a few of its own helpers with torch.jit.script when it is imported, and torch deprecates that
# with a FutureWarning printed on every GAT run. gatrec never scripts anything itself and only PyG can act
# on it, so this one deprecation notice (issued from torch.jit) is hidden.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning,
                        module=r"torch\.jit\._script")
