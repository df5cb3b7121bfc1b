-- One row per user: the whole time-ordered item sequence (what sequential and prompt-based models read).
select
    user_id,
    list(item_id order by position) as item_sequence,
    count(*) as n_interactions,
    min(interacted_at) as first_interaction_at,
    max(interacted_at) as last_interaction_at
from {{ ref('int_interactions_ordered') }}
group by user_id
