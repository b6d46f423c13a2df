"""Content hashes of frames: the data versions of partitions and training snapshots."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd


def frame_digest(frame: pd.DataFrame) -> str:
    """sha256 of a frame's column names, dtypes and values, independent of file formats.

    Hashing the values rather than Parquet bytes keeps the data version stable across pyarrow
    versions and writer settings; the same rows in the same order give the same digest.
    """
    digest = hashlib.sha256(f"rows={len(frame)};".encode())
    for column in frame.columns:
        series = frame[column]
        digest.update(f"{column}\0{series.dtype}\0".encode())
        if pd.api.types.is_datetime64_any_dtype(series.dtype):
            values = series.to_numpy(dtype="datetime64[ns]").view(np.int64)
            digest.update(np.ascontiguousarray(values, dtype="<i8").tobytes())
        elif isinstance(series.dtype, np.dtype) and series.dtype.kind in "biuf":
            values = series.to_numpy()
            digest.update(
                np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<")).tobytes()
            )
        else:
            text = "\x1f".join("\x00" if pd.isna(v) else str(v) for v in series.tolist())
            digest.update(text.encode())
    return digest.hexdigest()
