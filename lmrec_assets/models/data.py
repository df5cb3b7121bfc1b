"""Read the dbt split marts into the dense-index `SplitData` every model trains on."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from lmrec_assets.models.base import SplitData


def load_split_data(con: duckdb.DuckDBPyConnection) -> SplitData:
    items = con.execute("select item_id, item_text, title from marts.dim_items order by item_id").df()
    users = con.execute("select user_id from marts.dim_users order by user_id").df()
    item_index = pd.Index(items["item_id"])
    user_index = pd.Index(users["user_id"])

    train = con.execute("select user_id, item_id from marts.split_train order by user_id, position").df()
    user_codes = user_index.get_indexer(train["user_id"])
    item_codes = item_index.get_indexer(train["item_id"])
    bounds = np.searchsorted(user_codes, np.arange(len(user_index) + 1))  # rows are sorted by user code
    sequences = [item_codes[bounds[u] : bounds[u + 1]].astype(np.int64) for u in range(len(user_index))]

    def held_out(split: str) -> np.ndarray:
        frame = con.execute(f"select user_id, item_id from marts.split_{split}").df()  # split is a literal above
        targets = np.full(len(user_index), -1, dtype=np.int64)
        targets[user_index.get_indexer(frame["user_id"])] = item_index.get_indexer(frame["item_id"])
        return targets

    return SplitData(
        user_ids=user_index.to_numpy(dtype=str),
        item_ids=item_index.to_numpy(dtype=str),
        item_text=items["item_text"].tolist(),
        item_titles=items["title"].tolist(),
        train_sequences=sequences,
        valid_items=held_out("valid"),
        test_items=held_out("test"),
        fingerprint=split_fingerprint(con),
    )


def split_fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    """A cheap content hash of the split and the catalogue: equal fingerprints mean equal training data."""
    row = con.execute(
        """
        select
            (select count(*) from marts.fct_interactions),
            (select bit_xor(hash(user_id, item_id, event_ts, split, position)) from marts.fct_interactions),
            (select bit_xor(hash(item_id, item_text)) from marts.dim_items)
        """
    ).fetchone()
    return f"{row[0]}-{row[1]:016x}-{row[2]:016x}"
