"""gatrec/cloud/storage.py against gcp-storage-emulator on 127.0.0.1: streamed resumable uploads, atomic
publication (a failed upload leaves no object, not even a half-written one), folders mirrored both ways."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from gatrec.cloud import storage
from gatrec.cloud.settings import CloudError

KIB = 1 << 10


def names(bucket: str) -> list[str]:
    return sorted(b.name for b in storage.client().list_blobs(bucket))


def read(uri: str) -> bytes:
    loc = storage.GsUri.parse(uri)
    return storage.client().bucket(loc.bucket).blob(loc.name).download_as_bytes()


class BrokenReader(io.RawIOBase):
    """A source that fails after ``limit`` bytes, like a disk or pipe dying mid-upload."""

    def __init__(self, data: bytes, limit: int):
        self.buf, self.limit, self.pos = data, limit, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: len(self.buf)}[whence]
        self.pos = base + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, b) -> int:
        if self.pos >= self.limit:
            raise OSError("source went away")
        n = min(len(b), self.limit - self.pos)
        b[:n] = self.buf[self.pos:self.pos + n]
        self.pos += n
        return n


def test_large_file_streams_in_resumable_chunks_and_round_trips(bucket, tmp_path) -> None:
    data = os.urandom(1100 * KIB)  # > 4 chunks of 256 KiB
    (tmp_path / "big.bin").write_bytes(data)
    storage.upload_file(tmp_path / "big.bin", f"gs://{bucket}/data/big.bin", chunk_size=256 * KIB)
    assert names(bucket) == ["data/big.bin"]  # the temp object is gone
    assert storage.pull(f"gs://{bucket}/data/big.bin", tmp_path / "back.bin") == "file"
    assert (tmp_path / "back.bin").read_bytes() == data


def test_failed_upload_leaves_no_object_and_keeps_the_old_one(bucket) -> None:
    uri = f"gs://{bucket}/runs/model.bin"
    storage.upload_file(io.BytesIO(b"version 1"), uri)
    data = os.urandom(1100 * KIB)
    with pytest.raises(OSError, match="source went away"):
        storage.upload_file(io.BufferedReader(BrokenReader(data, 600 * KIB)), uri, chunk_size=256 * KIB)
    assert names(bucket) == ["runs/model.bin"]  # no half-written object, no temp object
    assert read(uri) == b"version 1"
    with pytest.raises(OSError):
        storage.upload_file(io.BufferedReader(BrokenReader(data, 600 * KIB)), f"gs://{bucket}/runs/new.bin",
                            chunk_size=256 * KIB)
    assert names(bucket) == ["runs/model.bin"]


def test_folder_push_and_pull(bucket, tmp_path) -> None:
    src = tmp_path / "prepared"
    (src / "sub").mkdir(parents=True)
    (src / "train.parquet").write_bytes(b"t" * 1000)
    (src / "sub" / "x.npy").write_bytes(b"x")
    (src / "manifest.json").write_text("{}")
    (src / ".gatrec-output.json").write_text('{"kind": "prepared"}')  # hidden, but part of the output
    (src / ".train.parquet.tmp-host-1-abc").write_bytes(b"half")  # an atomic write in flight: not uploaded
    uri = f"gs://{bucket}/data/prepared"
    assert storage.push(src, uri) == 4
    assert names(bucket) == ["data/prepared/.gatrec-output.json", "data/prepared/manifest.json",
                             "data/prepared/sub/x.npy", "data/prepared/train.parquet"]
    (src / ".train.parquet.tmp-host-1-abc").unlink()
    back = tmp_path / "back"
    assert storage.pull(uri, back) == "folder"
    assert storage.checksums(back) == storage.checksums(src)
    # Unchanged files are not uploaded again; removed ones are removed from the bucket.
    known = storage.checksums(back)
    (back / "sub" / "x.npy").unlink()
    (back / "metrics.json").write_text("{}")
    assert storage.push(back, uri, known=known) == 1
    assert names(bucket) == ["data/prepared/.gatrec-output.json", "data/prepared/manifest.json",
                             "data/prepared/metrics.json", "data/prepared/train.parquet"]
    # Pulling into an earlier copy makes it equal to the bucket again: stale files go, changed ones return.
    (back / "stale.txt").write_text("left by a failed step")
    (back / "train.parquet").write_bytes(b"corrupted")
    assert storage.pull(uri, back) == "folder"
    assert sorted(storage.checksums(back)) == [".gatrec-output.json", "manifest.json", "metrics.json",
                                               "train.parquet"]
    assert (back / "train.parquet").read_bytes() == b"t" * 1000


def test_missing_location_and_bad_uris(bucket, tmp_path) -> None:
    assert storage.pull(f"gs://{bucket}/nothing/here", tmp_path / "x") == "missing"
    assert not (tmp_path / "x").exists()
    with pytest.raises(CloudError, match="no bucket name"):
        storage.GsUri.parse("gs:///x")
    with pytest.raises(CloudError, match="not found"):
        storage.pull("gs://no-such-bucket-h6/x", tmp_path / "y")


def test_mlflow_client_writes_artifacts_straight_to_gs(bucket, tmp_path) -> None:
    """An experiment whose artefact root is gs:// (MLflow's GCS repository, no proxying server)."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.create_experiment("gs-direct", artifact_location=f"gs://{bucket}/mlruns")
    run = client.create_run(exp)
    (tmp_path / "note.txt").write_text("hello from gatrec")
    client.log_artifact(run.info.run_id, str(tmp_path / "note.txt"), artifact_path="notes")
    assert names(bucket) == [f"mlruns/{run.info.run_id}/artifacts/notes/note.txt"]
    back = client.download_artifacts(run.info.run_id, "notes/note.txt", str(tmp_path / "dl"))
    assert Path(back).read_text() == "hello from gatrec"
