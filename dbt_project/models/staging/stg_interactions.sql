-- One row per accepted event. Types and names only: rejects and exact duplicates were quarantined at ingestion.
select
    user_id,
    item_id,
    "timestamp" as event_ts,
    to_timestamp("timestamp") as interacted_at,
    rating,
    source_row,
    batch_id
from {{ source('raw', 'interactions') }}
