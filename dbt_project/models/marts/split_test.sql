-- The test split as its own table, so models read exactly what the protocol defines.
select user_id, item_id, event_ts, interacted_at, rating, position
from {{ ref('fct_interactions') }}
where split = 'test'
