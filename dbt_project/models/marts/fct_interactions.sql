-- Every event with its split label. Per-user leave-one-out by time: the last event is test, the second-to-last
-- valid, the rest train. Users with fewer than 3 events stay entirely in train (nothing to hold out).
select
    user_id,
    item_id,
    event_ts,
    interacted_at,
    rating,
    position,
    n_user_interactions,
    case
        when n_user_interactions < 3 then 'train'
        when position_from_end = 1 then 'test'
        when position_from_end = 2 then 'valid'
        else 'train'
    end as split
from {{ ref('int_interactions_ordered') }}
