"""The service's settings: BentoML build/serve arguments (``--arg name=value``), stored in the Bento."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MODEL = "gatrec:latest"


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(DEFAULT_MODEL, description="BentoML model tag of the imported champion.")
    approx_above: int = Field(1_000_000, ge=1, description="Catalogues with more items than this are "
                              "ranked through an approximate FAISS index; smaller ones exactly.")
    approx_index: Literal["hnsw", "ivf"] = Field("hnsw", description="The approximate index kind.")
    hnsw_m: int = Field(32, ge=4, description="HNSW graph degree.")
    ef_search: int = Field(128, ge=1, description="HNSW search breadth.")
    ivf_lists: int = Field(0, ge=0, description="IVF cells; 0 = 4 sqrt(n_items).")
    nprobe: int = Field(32, ge=1, description="IVF cells searched per query.")
    max_body_bytes: int = Field(1 << 20, ge=1024, description="Larger request bodies get a 413.")
    max_batch: int = Field(256, ge=1, description="Most single requests scored in one product.")
    blas_threads: int = Field(1, ge=1, description="BLAS threads of the scoring product: 1 leaves the other "
                              "core of a 2-core machine to the HTTP event loop.")
