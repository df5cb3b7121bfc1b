"""The second domain (Amazon Toys & Games) loads through the generic files source as ordered sequences."""

from __future__ import annotations

import json
from pathlib import Path

from lmrec_assets.experiments.domains import amazon_toys
from lmrec_assets.ingestion.sources.files import FilesSpec, load_files
from lmrec_assets.ingestion.validate import validate_interactions, validate_items


def test_toys_sequences_round_trip_counts(shared_data: Path) -> None:
    spec = amazon_toys().files_spec
    assert Path(spec["interactions"]).parent == shared_data / "amazon-toys"
    data = load_files(FilesSpec(**spec))
    items = validate_items(data.items)
    interactions = validate_interactions(data.interactions, set(items.accepted["item_id"]), None)
    accepted = interactions.accepted
    assert len(interactions.rejected) == 0 and len(items.rejected) == 0
    assert (accepted["user_id"].nunique(), len(items.accepted), len(accepted)) == (19_412, 11_924, 167_597)
    assert accepted["item_id"].nunique() == 11_924
    # position in the line is the time order: user 1's line is "1 1 2 3 4 5 6 7"
    first = accepted[accepted["user_id"] == "1"].sort_values("timestamp")
    assert first["item_id"].tolist() == ["1", "2", "3", "4", "5", "6", "7"]
    titles = items.accepted["title"]
    assert not titles.str.contains("&amp;|&quot;|&#39;", regex=True).any()  # entities unescaped before any LM
    raw_titles = [json.loads(line)["title"] for line in (shared_data / "amazon-toys" / "Toys_item_text.jsonl").open()]
    assert sum("&amp;" in t for t in raw_titles) > 0 and titles.str.contains("&", regex=False).any()
