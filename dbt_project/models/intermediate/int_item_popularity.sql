select
    item_id,
    count(*) as n_interactions,
    count(distinct user_id) as n_users,
    min(interacted_at) as first_interaction_at,
    rank() over (order by count(*) desc) as popularity_rank
from {{ ref('stg_interactions') }}
group by item_id
